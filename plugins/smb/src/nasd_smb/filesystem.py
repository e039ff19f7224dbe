"""What the file system under a share can store: one read per mounted dataset, remembered."""

from __future__ import annotations

import errno
import os
from typing import Any

_PROBE = "user.nasd-probe"


def has_xattrs(cache: dict[str, Any], path: str) -> bool:
    """Whether the file system mounted at ``path`` stores extended attributes (zfs-fuse does not). A path
    not mounted (yet) says nothing about its dataset: True, asked again next time."""
    known: dict[str, bool] = cache.setdefault("smb-xattrs", {})
    if path not in known:
        if not os.path.ismount(path):
            return True
        try:
            os.getxattr(path, _PROBE)
            known[path] = True
        except OSError as e:
            known[path] = e.errno == errno.ENODATA
    return known[path]
