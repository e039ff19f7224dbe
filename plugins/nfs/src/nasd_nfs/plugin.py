"""The NFS plugin: NASShares with ``protocol: nfs`` into nasd's own exports file (a file shared by the shares,
see :class:`.exportfs.ExportsFile`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from nasd.plugin import (ConditionChange, Context, NASShare, Observed, PermanentError, Plan, Problem, Resource,
                         SharedFile, TemporaryError, ZDataset, hookimpl)

from .exportfs import ExportsFile, fsid_claim, line_path, path_claim
from .foreign import HostExports, read_host_exports
from .render import UnsafeValue, export_for, mount_command, unescape_path
from .settings import NFSSettings, load_settings

NAME = "nfs"


@dataclass
class NfsObservation:
    settings: NFSSettings
    exports: SharedFile[str]  # nasd's exports file, a line per share
    host: HostExports
    _fuse_mounts: set[str] | None = None

    @property
    def fuse_mounts(self) -> set[str]:
        """FUSE mount points, read when the first share is planned (its dataset is mounted by then)."""
        if self._fuse_mounts is None:
            self._fuse_mounts = _fuse_mounts()
        return self._fuse_mounts


def _is_nfs(r: Resource) -> bool:
    return isinstance(r, NASShare) and r.spec.protocol == "nfs"


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


def _obs(observed: Observed) -> NfsObservation:
    obs = observed.of(NAME, NfsObservation)  # (raises what went wrong while observing)
    if obs is None:
        raise TemporaryError("cannot read the NFS exports: not observed", reason="ObserveFailed")
    return obs


def _fsid_problem(share: NASShare, path: str, obs: NfsObservation) -> Problem | None:
    nfs = share.spec.nfs
    assert nfs is not None
    if nfs.fsid is None and path in obs.fuse_mounts:
        return Problem("FsidRequired", f"{path} is on a FUSE file system (zfs-fuse), which gives NFS no stable "
                       "file handles: set spec.nfs.fsid to a number unique among this host's exports")
    holder = obs.exports.holder(fsid_claim(nfs.fsid)) if nfs.fsid is not None else None
    if holder is not None and holder != share.name:
        return Problem("DuplicateFsid", f"spec.nfs.fsid {nfs.fsid} is already NASShare {holder}'s; "
                       "give each export its own fsid")
    return None


class NFSPlugin:
    """Kernel NFS exports: nasd's own file in /etc/exports.d, checked by exportfs before it is put in effect."""

    def __init__(self) -> None:
        #: ``plugins.nfs`` of the configuration, read at the first observation
        self.settings: NFSSettings | None = None
        #: share -> its hosts that the last ``exportfs -ra`` could not resolve (it exports to the others)
        self.unresolved: dict[str, list[str]] = {}

    def _settings(self, ctx: Context) -> NFSSettings:
        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME))
        return self.settings

    def _note_unresolved(self, ctx: Context, unresolved: dict[str, list[str]]) -> None:
        if unresolved != self.unresolved:
            self.unresolved = unresolved
            ctx.request_reconcile("exportfs could not resolve some hosts")  # the shares' conditions say so

    def _in_effect(self, applied: Mapping[str, str], host: HostExports) -> bool:
        """Whether exportfs's table has every path of the file (no reload owed: the file's own marker).
        Clients are not compared: exportfs records a host name as it resolved it, and leaves out one it could not
        resolve (a share whose hosts all failed to resolve has no path in the table either, and is no drift)."""
        return all(line_path(line) in host.active for share, line in applied.items() if share not in self.unresolved)

    @hookimpl
    def observe(self, ctx: Context, desired: list[Resource]) -> NfsObservation | None:
        """Reads files only: nasd's exports file, the other exports files, etab and the mount table."""
        mine = any(_is_nfs(r) for r in desired)
        try:
            settings = self._settings(ctx)
        except PermanentError:
            if mine:
                raise  # (each NFS share says what is wrong with the settings)
            return None
        if not mine and not settings.exportsFile.exists():
            return None  # no NFS here at all
        host = read_host_exports(settings.exportsFile, settings.systemExports, settings.etab)
        # (a reload left to a later pass, or cut short by a crash, is owed until `exportfs -ra` ran)
        exports = SharedFile.read(settings.exportsFile, ExportsFile(settings, self._note_unresolved),
                                  owed=ctx.state_dir / "nfs-reload-owed",
                                  in_effect=lambda applied: self._in_effect(applied, host))
        return NfsObservation(settings, exports, host)

    @hookimpl
    def plan_share(self, ctx: Context, share: NASShare, dataset: ZDataset, observed: Observed) -> Plan | None:
        if share.spec.protocol != "nfs":
            return None
        obs = _obs(observed)
        path = dataset.status.mountpoint
        if not path or not path.startswith("/"):
            raise TemporaryError(f"dataset {dataset.name} has no mountpoint yet", reason="DatasetNotReady")
        try:
            line = export_for(share, path).line()
        except UnsafeValue as e:
            return Plan(problem=Problem("UnsafeValue", str(e)))
        problem = _fsid_problem(share, path, obs)
        if problem is not None:
            return Plan(problem=problem)
        holder = obs.exports.holder(path_claim(path))
        if holder is not None and holder != share.name:
            return Plan(problem=Problem("DuplicateExport", f"NASShare {holder} already exports {path}: "
                                        "put both client lists in one share"))
        nfs = share.spec.nfs
        assert nfs is not None
        status = {
            "path": path,
            "exportLine": line,
            "mountCommand": mount_command(obs.settings.host, path, share.name, nfs.clients[0].security),
        }
        conditions: list[ConditionChange] = []
        removed: list[str] = []
        elsewhere = obs.host.foreign.get(path.rstrip("/") or "/")
        if elsewhere:
            conditions.append(ConditionChange("ForeignExport", True, "ExportedElsewhere",
                                              f"{path} is also exported by {', '.join(elsewhere)} (not nasd's; left "
                                              "alone): a client listed there gets those options. Remove it there "
                                              "(for a ZFS sharenfs export: zfs set sharenfs=off)"))
        else:
            removed.append("ForeignExport")
        unresolved = self.unresolved.get(share.name)
        if unresolved and obs.exports.applied.get(share.name) == line:
            conditions.append(ConditionChange("UnresolvedHosts", True, "NotResolvable",
                                              f"exportfs could not resolve {', '.join(unresolved)}: not exported to "
                                              "them (check the names, or use addresses)"))
        else:
            removed.append("UnresolvedHosts")
        actions = []
        if obs.exports.set(share.name, line):
            actions.append(obs.exports.action(share.name, f"export {path} ({share.name}) and run exportfs -ra"))
        return Plan(actions=actions, status=status, conditions=conditions, removed_conditions=removed)

    @hookimpl
    def plan_absent(self, ctx: Context, resource: Resource, observed: Observed) -> Plan | None:
        if not _is_nfs(resource):
            return None
        obs = observed.of(NAME, NfsObservation)  # (raises what went wrong while observing)
        if obs is None:
            return Plan()  # nasd exports nothing: nothing to undo
        if not obs.exports.remove(resource.name):
            return Plan()
        return Plan(actions=[obs.exports.action(resource.name, f"unexport {resource.name} and run exportfs -ra")])
