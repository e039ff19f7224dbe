"""The NFS plugin's hook implementations: NASShares with ``protocol: nfs`` into nasd's own exports file."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nasd.context import Context
from nasd.errors import CommandError, PermanentError, TemporaryError
from nasd.hookspecs import hookimpl
from nasd.models import NASShare, Resource, ZDataset
from nasd.planning import Action, Plan, Problem

from . import exportfs
from .foreign import HostExports, read_host_exports
from .render import UnsafeValue, export_for, line_share, mount_command, parse, render, unescape_path
from .settings import NFSSettings, load_settings

NAME = "nfs"
_UNRESOLVED = re.compile(r"Failed to resolve (\S+)")


@dataclass
class NfsObservation:
    settings: NFSSettings
    current: str | None  # nasd's exports file now (None: there is none)
    host: HostExports
    _fuse_mounts: set[str] | None = None
    applied: dict[str, str] = field(default_factory=dict)  # share -> its line in the file now
    lines: dict[str, str] = field(default_factory=dict)  # share -> its line as planned in this pass
    paths: dict[str, str] = field(default_factory=dict)  # exported path -> share (this pass)
    fsids: dict[int, str] = field(default_factory=dict)  # fsid -> share (this pass)
    rejected: dict[str, str] = field(default_factory=dict)  # share -> why exportfs refused it (this pass)
    synced: bool = False  # the file is the rendering of ``applied`` and exportfs put all of it in effect

    @property
    def fuse_mounts(self) -> set[str]:
        """FUSE mount points, read when the first share is planned (its dataset is mounted by then)."""
        if self._fuse_mounts is None:
            self._fuse_mounts = _fuse_mounts()
        return self._fuse_mounts


def _is_nfs(r: Resource) -> bool:
    return isinstance(r, NASShare) and r.spec.protocol == "nfs"


def _settings(ctx: Context) -> NFSSettings:
    if "nfs-settings" not in ctx.cache:
        ctx.cache["nfs-settings"] = load_settings(ctx.settings(NAME))
    return ctx.cache["nfs-settings"]


def _fuse_mounts() -> set[str]:
    out = set()
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].startswith("fuse"):
                out.add(unescape_path(parts[1]))
    except OSError:
        pass
    return out


@hookimpl
def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    """Reads files only: nasd's exports file, the other exports files, etab and the mount table."""
    mine = any(_is_nfs(r) for r in desired)
    try:
        settings = _settings(ctx)
    except PermanentError as e:
        return {"nfs": None, "nfs_error": str(e)} if mine else None
    try:
        current: str | None = settings.exportsFile.read_text()
    except FileNotFoundError:
        current = None
    if not mine and current is None:
        return None  # no NFS here at all
    obs = NfsObservation(settings, current, read_host_exports(settings.exportsFile, settings.systemExports,
                                                            settings.etab))
    obs.applied = parse(current or "")
    obs.lines = dict(obs.applied)
    try:
        rendered_again = current is not None and render(obs.applied) == current
    except UnsafeValue:  # edited by hand (its header says edits are overwritten): write it again
        rendered_again = False
    obs.synced = _in_effect(ctx, obs) and (
        (current is None and not obs.applied) or rendered_again)
    return {"nfs": obs}


def _owed(ctx: Context) -> Path:
    """A marker in the state directory from a write of the exports file until its ``exportfs -ra`` ran: a
    reload left to a later pass, or cut short by a crash, is still made."""
    return ctx.state_dir / "nfs-reload-owed"


def _in_effect(ctx: Context, obs: NfsObservation) -> bool:
    """Whether exportfs has put nasd's file in effect: no reload is owed, and exportfs's table has every
    path of the file. Clients are not compared: exportfs records a host name as it resolved it, and
    leaves out one it could not resolve (a share whose hosts all failed to resolve has no path in the
    table either, and is no drift)."""
    if _owed(ctx).exists():
        return False
    unresolved = ctx.cache.get("nfs-unresolved", {})
    return all(unescape_path(line.split(" ", 1)[0]) in obs.host.active for share, line in obs.applied.items()
               if share not in unresolved)


def _unresolved(obs: NfsObservation, messages: str) -> dict[str, list[str]]:
    """share -> its hosts that exportfs could not resolve (it exports to the others and warns)."""
    hosts = set(_UNRESOLVED.findall(messages))
    out: dict[str, list[str]] = {}
    for share, line in obs.applied.items():
        mine = sorted(h for h in hosts if f" {h}(" in f" {line}")
        if mine:
            out[share] = mine
    return out


def _obs(observed: Mapping[str, Any]) -> NfsObservation:
    obs = observed.get("nfs")
    if obs is None:
        raise TemporaryError(f"cannot read the NFS exports: {observed.get('nfs_error', 'not observed')}",
                             reason="ObserveFailed")
    return obs


def _candidate(obs: NfsObservation) -> dict[str, str]:
    """All planned lines, except that a share exportfs refused in this pass keeps its line in effect,
    or stays out if it is new, or if the refused line is the one in effect (say its path is gone:
    keeping it would block every other share's change)."""
    out = {}
    for share, line in obs.lines.items():
        if share not in obs.rejected:
            out[share] = line
        elif share in obs.applied and obs.applied[share] != line:
            out[share] = obs.applied[share]
    return out


def _blame(obs: NfsObservation, text: str, result: exportfs.CheckResult) -> set[str]:
    shares = {s for s in (line_share(text, n) for n in result.lines) if s}
    for share, line in obs.lines.items():
        if any(unescape_path(line.split(" ", 1)[0]) == p for p in result.paths):
            shares.add(share)
    return shares


def _mark_owed(ctx: Context) -> None:
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    _owed(ctx).touch()


def _apply_action(obs: NfsObservation, what: str, share: str | None = None) -> Action:
    """Write the exports file with everything planned so far in this pass and run ``exportfs -ra``
    once: the first such action of a pass carries all of it, the later ones find nothing left to do."""

    async def apply(ctx: Context) -> None:
        if share in obs.rejected:
            raise PermanentError(f"exportfs refused this share's export: {obs.rejected[share]}",
                                 reason="ExportfsRefused")
        warnings = ""
        for _attempt in range(2):
            candidate = _candidate(obs)
            text = render(candidate)
            if obs.synced and candidate == obs.applied:
                return  # an earlier action of this pass did it
            if not candidate:
                _mark_owed(ctx)
                exportfs.remove(obs.settings.exportsFile)
                break
            if text == obs.current:
                break  # the file is right; only exportfs has not put it in effect
            staged = exportfs.write_staged(obs.settings.exportsFile, text)
            result = await exportfs.check(ctx, staged, obs.settings.exportsFile.parent)
            if result.ok:
                _mark_owed(ctx)
                exportfs.swap(staged, obs.settings.exportsFile)
                warnings = result.message
                break
            staged.unlink(missing_ok=True)
            message = result.message or "exportfs failed"
            if result.missing:
                raise _missing(ctx, result.missing)
            if "program not found" in message:
                raise PermanentError(f"exportfs's check needs unshare, which is not installed ({message}): install "
                                     "util-linux; the exports in effect are unchanged", reason="UnshareMissing")
            blamed = _blame(obs, text, result) - set(obs.rejected)
            if not blamed:
                control = await exportfs.works(ctx, obs.settings.exportsFile)
                if control.missing:
                    raise _missing(ctx, control.missing)
                if not control.ok:
                    raise _logged(ctx,
                        f"exportfs ({exportfs.program(ctx)}) fails even on an empty exports file: "
                        f"{(control.message or 'no message')[:400]}; repair it (apt-get install --reinstall "
                        "nfs-kernel-server) or see its message. The exports in effect are unchanged: nasd's exports "
                        "file is changed once exportfs can check it", reason="ExportfsFailed")
                raise PermanentError(f"exportfs refused the new exports file (nothing changed): {message}",
                                     reason="ExportfsRefused")
            for s in blamed:
                obs.rejected[s] = message
            if share in obs.rejected:
                raise PermanentError(f"exportfs refused this share's export: {message}", reason="ExportfsRefused")
        else:
            raise PermanentError("exportfs refused the new exports file twice (nothing changed)",
                                 reason="ExportfsRefused")
        obs.current, obs.applied, obs.synced = (text if candidate else None), candidate, False
        settle = obs.settings.reloadSettleSeconds
        if ctx.watch and settle and candidate:  # the last unexport never waits: no later pass would see it
            await asyncio.sleep(settle)
            if ctx.changes_pending():  # more edits are coming: the next pass runs exportfs once for all
                ctx.log.info("exports file written; exportfs -ra waits for the rest of this burst")
                return
        try:
            warnings += "\n" + await exportfs.reload(ctx)
        except CommandError as e:
            if e.returncode == 127 and not exportfs.installed(exportfs.program(ctx)):
                raise _missing(ctx, exportfs.program(ctx)) from None
            raise _logged(ctx, f"exportfs -ra failed: {(e.stderr.strip() or str(e))[:400]}; the exports file is "
                                 "written and put in effect once exportfs -ra works (until then the previous exports "
                                 "stay in effect): see exportfs's message", reason="ExportfsFailed") from None
        _owed(ctx).unlink(missing_ok=True)
        if warnings.strip():
            ctx.log.warning("exportfs: %s", warnings.strip())
        obs.synced = True
        unresolved = _unresolved(obs, warnings)
        if unresolved != ctx.cache.get("nfs-unresolved", {}):
            ctx.cache["nfs-unresolved"] = unresolved
            ctx.request_reconcile("exportfs could not resolve some hosts")  # the shares' conditions say so

    return Action(what, func=apply)


def _missing(ctx: Context, path: str) -> TemporaryError:
    return _logged(ctx, f"exportfs is not installed (not found: {path}): install nfs-kernel-server (apt-get install "
                   "nfs-kernel-server) or set programs.exportfs in nasd's configuration. The exports in effect are "
                   "unchanged: nasd's exports file is changed once exportfs can check it", reason="ExportfsMissing")


def _logged(ctx: Context, message: str, reason: str) -> TemporaryError:
    """exportfs missing or broken: retried with backoff (no share is to blame), and said in the log."""
    ctx.log.warning("%s: %s", reason, message)
    return TemporaryError(message, reason=reason, delay=1.0)


def _fsid_problem(share: NASShare, path: str, obs: NfsObservation) -> Problem | None:
    nfs = share.spec.nfs
    assert nfs is not None
    if nfs.fsid is None and path in obs.fuse_mounts:
        return Problem("FsidRequired", f"{path} is on a FUSE file system (zfs-fuse), which gives NFS no stable "
                       "file handles: set spec.nfs.fsid to a number unique among this host's exports")
    if nfs.fsid is not None:
        holder = obs.fsids.setdefault(nfs.fsid, share.name)
        if holder != share.name:
            return Problem("DuplicateFsid", f"spec.nfs.fsid {nfs.fsid} is already NASShare {holder}'s; "
                           "give each export its own fsid")
    return None


@hookimpl
def plan_share(ctx: Context, share: NASShare, dataset: ZDataset, observed: Mapping[str, Any]) -> Plan | None:
    if share.spec.protocol != "nfs":
        return None
    obs = _obs(observed)
    path = dataset.status.mountpoint
    if not path or not path.startswith("/"):
        raise TemporaryError(f"dataset {dataset.name} has no mountpoint yet", reason="DatasetNotReady")
    try:
        export = export_for(share, path)
        line = export.line()
    except UnsafeValue as e:
        return Plan(problem=Problem("UnsafeValue", str(e)))
    problem = _fsid_problem(share, path, obs)
    if problem is not None:
        return Plan(problem=problem)
    holder = obs.paths.setdefault(path, share.name)
    if holder != share.name:
        return Plan(problem=Problem("DuplicateExport", f"NASShare {holder} already exports {path}: "
                                    "put both client lists in one share"))
    obs.lines[share.name] = line
    nfs = share.spec.nfs
    assert nfs is not None
    status = {
        "path": path,
        "exportLine": line,
        "mountCommand": mount_command(obs.settings.host, path, share.name, nfs.clients[0].security),
    }
    conditions: list[tuple[str, bool, str, str]] = []
    removed: list[str] = []
    elsewhere = obs.host.foreign.get(path.rstrip("/") or "/")
    if elsewhere:
        conditions.append(("ForeignExport", True, "ExportedElsewhere",
                           f"{path} is also exported by {', '.join(elsewhere)} (not nasd's; left alone): "
                           "a client listed there gets those options. Remove it there (for a ZFS "
                           "sharenfs export: zfs set sharenfs=off)"))
    else:
        removed.append("ForeignExport")
    unresolved = ctx.cache.get("nfs-unresolved", {}).get(share.name)
    if unresolved and obs.applied.get(share.name) == line:
        conditions.append(("UnresolvedHosts", True, "NotResolvable",
                           f"exportfs could not resolve {', '.join(unresolved)}: not exported to them "
                           "(check the names, or use addresses)"))
    else:
        removed.append("UnresolvedHosts")
    actions = []
    if not obs.synced or obs.applied.get(share.name) != line:
        actions.append(_apply_action(obs, f"export {path} ({share.name}) and run exportfs -ra", share.name))
    return Plan(actions=actions, status=status, conditions=conditions, removed_conditions=removed)


@hookimpl
def plan_absent(ctx: Context, resource: Resource, observed: Mapping[str, Any]) -> Plan | None:
    if not _is_nfs(resource):
        return None
    if observed.get("nfs") is None and "nfs_error" not in observed:
        return Plan()  # nasd exports nothing: nothing to undo
    obs = _obs(observed)
    obs.lines.pop(resource.name, None)
    if resource.name not in obs.applied and obs.synced:
        return Plan()
    return Plan(actions=[_apply_action(obs, f"unexport {resource.name} and run exportfs -ra")])
