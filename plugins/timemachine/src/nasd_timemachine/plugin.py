"""The Time Machine plugin's hook implementations: fruit options for the SMB plugin's shares (through the
hooks the SMB plugin declares), and the quota of a Time Machine share's dataset (through the core's
``dataset_properties``). It imports neither the SMB nor the ZFS plugin."""

from __future__ import annotations

import errno
import os
import re
from typing import Any, Mapping

from nasd.context import Context
from nasd.hookspecs import hookimpl
from nasd.models import NASShare, Resource, ZDataset

from . import options

NAME = "timemachine"
_ANY = "timemachine-any"
_XATTRS = "timemachine-xattrs"


def _smb_shares(resources: list[Resource]) -> list[NASShare]:
    return [r for r in resources if isinstance(r, NASShare) and r.spec.protocol == "smb"]


def has_xattrs(ctx: Context, path: str) -> bool:
    """Whether the file system at ``path`` stores extended attributes (zfs-fuse does not): a read, once per path."""
    cache: dict[str, bool] = ctx.cache.setdefault(_XATTRS, {})
    if path not in cache:
        try:
            os.getxattr(path, "user.nasd-probe")
            cache[path] = True
        except OSError as e:
            if e.errno == errno.ENOENT:
                return True  # not mounted yet: decide when it is
            cache[path] = e.errno == errno.ENODATA
    return cache[path]


@hookimpl
def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    ctx.cache[_ANY] = any(options.is_time_machine(s) for s in _smb_shares(desired))
    return None


@hookimpl
def smb_global_options(ctx: Context, shares: list[NASShare]) -> Mapping[str, Any] | None:
    model = str(ctx.settings(NAME).get("model", options.DEFAULT_MODEL))
    return options.global_options(shares, model) or None


@hookimpl
def smb_share_options(ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
    if not ctx.cache.get(_ANY):
        return None
    path = dataset.status.mountpoint or ""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", share.name)
    tdb = str(ctx.state_dir / f"timemachine-{safe}.tdb")  # (only where the file system has no xattrs)
    return options.share_options(share, True, has_xattrs(ctx, path) if path else True, tdb) or None


@hookimpl
def dataset_properties(ctx: Context, datasets: list[ZDataset], desired: list[Resource]) -> Mapping[str, Any] | None:
    return options.quotas(_smb_shares(desired)) or None
