"""Hooks the SMB plugin offers to other plugins (declared through the core's ``addhooks``), so the
snapshots and Time Machine plugins can add share options without importing this one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nasd.hookspecs import hookspec

if TYPE_CHECKING:
    from nasd.context import Context
    from nasd.models import NASShare, ZDataset


@hookspec
def smb_share_options(ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
    """Add smb.conf parameters to one share's section.

    Called when the SMB plugin renders the share ``share`` on ``dataset`` (with its status).
    Return value: a mapping of parameter -> value (checked by the renderer like every value);
    ``vfs objects`` values from several plugins are joined. ``None`` adds nothing.
    Must never: return parameters that run programs (``*exec``, ``*script``, ``*command``),
    ``include``, or values with newlines or '%'.
    """
