"""Hooks the SMB plugin offers to other plugins (declared through the core's ``addhooks``), so the
snapshots and Time Machine plugins can add share options without importing this one (a plugin that answers
``smb_share_status`` returns this module's :class:`SmbShareStatus`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nasd.plugin import ConditionChange, Context, NASShare, ZDataset, hookspec


@dataclass
class SmbShareStatus:
    """What a plugin adds to an SMB share (the answer of :func:`smb_share_status`): ``status`` fields of the
    share's status (e.g. ``timeMachine``), ``conditions`` besides Ready, and the condition types that no longer
    apply (``remove_conditions``)."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionChange] = field(default_factory=list)
    remove_conditions: list[str] = field(default_factory=list)


@hookspec
def smb_share_options(ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
    """Add smb.conf parameters to one share's section.

    Called when the SMB plugin renders the share ``share`` on ``dataset`` (with its status).
    Return value: a mapping of parameter -> value (checked by the renderer like every value);
    ``vfs objects`` values from several plugins are joined with the SMB plugin's own (every share has
    ``streams_xattr``, ``acl_xattr`` and, without extended attributes, ``xattr_tdb``) and stacked in one
    fixed order (``nasd_smb.features.VFS_ORDER``); a module outside that allowlist keeps the share out
    (``UnsafeValue``). ``None`` adds nothing.
    Must never: return parameters that run programs (``*exec``, ``*script``, ``*command``),
    ``include``, or values with newlines or '%'.
    """


@hookspec
def smb_global_options(ctx: Context, shares: list[NASShare]) -> Mapping[str, Any] | None:
    """Add smb.conf parameters to the ``[global]`` section.

    Called once per pass, while the SMB plugin observes, with every desired SMB share (e.g. the Time
    Machine plugin sets the fruit module's server-wide settings when any share is a Time Machine share).
    Return value: a mapping of parameter -> value, checked by the renderer like every value; a parameter
    the SMB plugin sets itself (ports, paths, security) cannot be changed this way and is refused.
    ``None`` adds nothing. Must never: return parameters that run programs, ``include``, or values with
    newlines or '%'.
    """


@hookspec
def smb_share_status(ctx: Context, share: NASShare, dataset: ZDataset) -> SmbShareStatus | None:
    """Add status fields and Conditions to an SMB share.

    Called when the SMB plugin plans the share ``share`` (after ``smb_share_options``), e.g. by the Time
    Machine plugin for its quota, used space and whether its mDNS advertisement was seen (``Advertised``).
    Return value: a :class:`SmbShareStatus` (``nasd_smb.SmbShareStatus``): status fields, conditions
    (``ConditionChange``: ``ok`` is True, False or None for Unknown), and the condition types that no longer
    apply. ``None`` adds nothing.
    Must never: run a command or block; set ``Ready`` (the SMB plugin owns it).
    """
