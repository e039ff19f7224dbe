"""The SMB plugin's hook implementations: shares into smb.conf, local users and groups."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pluggy

from nasd.context import Context
from nasd.errors import PermanentError, TemporaryError
from nasd.hookspecs import hookimpl
from nasd.models import NASDirectory, NASGroup, NASShare, NASUser, Resource, ZDataset
from nasd.planning import Action, Plan, Problem

from . import features, filesystem, hookspecs, identity, pod, smbd
from .render import (HEADER, ShareConfig, UnsafeValue, check_pair, global_options, parse_shares, render, render_share,
                     share_config)
from .settings import SMBSettings, load_settings

NAME = "smb"


@dataclass
class SmbObservation:
    settings: SMBSettings
    current: str | None
    directories: list[NASDirectory] = field(default_factory=list)
    shares: dict[str, ShareConfig] = field(default_factory=dict)  # what smb.conf should serve
    applied: dict[str, ShareConfig] = field(default_factory=dict)  # what it serves now, as far as known
    rejected: set[str] = field(default_factory=set)  # shares testparm refused in this pass
    synced: bool = False  # whether smb.conf is exactly the rendering of ``applied``
    names: dict[str, str] = field(default_factory=dict)  # lower-cased share name -> NASShare
    extra_global: dict[str, str] = field(default_factory=dict)  # [global] parameters other plugins add
    identity: identity.IdentityObservation = field(default_factory=identity.IdentityObservation)
    nfs_datasets: set[str] = field(default_factory=set)  # datasets (zfs names) exported over NFS: they keep POSIX locks
    users: list[NASUser] = field(default_factory=list)  # pod mode: every pod creates these
    groups: list[NASGroup] = field(default_factory=list)
    missing_modules: set[str] = field(default_factory=set)  # VFS modules of the allowlist Samba lacks here


@hookimpl
def addhooks(pluginmanager: pluggy.PluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _settings(ctx: Context) -> SMBSettings:
    if "smb-settings" not in ctx.cache:
        ctx.cache["smb-settings"] = load_settings(ctx.settings(NAME), ctx.state_dir)
    return ctx.cache["smb-settings"]


def _obs(observed: Mapping[str, Any]) -> SmbObservation:
    obs = observed.get("smb")
    if obs is None:
        raise TemporaryError(f"cannot read SMB state: {observed.get('smb_error', 'not observed')}",
                             reason="ObserveFailed")
    return obs


def _is_smb(r: Resource) -> bool:
    return isinstance(r, NASShare) and r.spec.protocol == "smb"


def _extra_options(ctx: Context, share: NASShare, dataset: ZDataset, base: dict[str, str]) -> dict[str, str]:
    """``base`` (the client features) and what other plugins add; ``vfs objects`` merged in nasd's order.
    Raises UnknownModule."""
    out = dict(base)
    vfs = [base.get("vfs objects", "")]
    if ctx.pm is not None and hasattr(ctx.pm.hook, "smb_share_options") \
            and ctx.pm.hook.smb_share_options.get_hookimpls():
        for part in ctx.pm.hook.smb_share_options(ctx=ctx, share=share, dataset=dataset):
            for key, value in (part or {}).items():
                if key == "vfs objects":
                    vfs.append(str(value))
                else:
                    out[key] = str(value)
    out["vfs objects"] = features.merge_vfs(*vfs)
    return out


def _global_extras(ctx: Context, shares: list[NASShare], settings: SMBSettings) -> dict[str, str]:
    out: dict[str, str] = {}
    if ctx.pm is None or not hasattr(ctx.pm.hook, "smb_global_options"):
        return out
    own = set(global_options(settings, [], False))
    for part in ctx.pm.hook.smb_global_options(ctx=ctx, shares=shares):
        for key, value in (part or {}).items():
            if str(key) in own:
                ctx.log.error("smb_global_options: [global] %s is nasd's own setting (left out)", key)
                continue
            try:
                check_pair(str(key), str(value))
            except UnsafeValue as e:  # one plugin's bad value must not keep every share out
                ctx.log.error("smb_global_options: %s (left out)", e)
                continue
            out[str(key)] = str(value)
    return dict(sorted(out.items()))


@hookimpl
async def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    mine = [r for r in desired if _is_smb(r) or isinstance(r, (NASDirectory, NASUser, NASGroup))]
    try:
        settings = _settings(ctx)
    except PermanentError as e:
        return {"smb": None, "smb_error": str(e)} if mine else None
    try:
        current: str | None = settings.config_file.read_text()
    except FileNotFoundError:
        current = None
    zfs_names = {r.name: r.zfs_name for r in desired if isinstance(r, ZDataset)}
    nfs = {zfs_names[r.spec.dataset] for r in desired
           if isinstance(r, NASShare) and r.spec.protocol == "nfs" and r.spec.dataset in zfs_names}
    if settings.mode == "pod":  # nothing on the host: each share's pod has its smbd and identities (no I/O: observed
        # even with no share left, so that the last share's deletion still removes its pod)
        return {"smb": SmbObservation(
            settings=settings, current=None, directories=[r for r in desired if isinstance(r, NASDirectory)],
            nfs_datasets=nfs,
            extra_global=_global_extras(ctx, [r for r in desired if _is_smb(r)], settings),  # type: ignore[misc]
            users=[r for r in desired if isinstance(r, NASUser)], groups=[r for r in desired if isinstance(r, NASGroup)])}
    registry_path = settings.run_dir / "nasd-identities.json"
    registry = identity.load_registry(registry_path)
    if not mine and current is None and not registry["users"] and not registry["groups"] \
            and not any(registry["creating"].values()):
        return None  # no SMB here at all: not even a file read more
    obs = SmbObservation(settings=settings, current=current, nfs_datasets=nfs,
                         missing_modules=filesystem.missing_vfs_modules(features.VFS_ORDER))
    obs.directories = [r for r in desired if isinstance(r, NASDirectory)]
    obs.extra_global = _global_extras(ctx, [r for r in desired if _is_smb(r)], settings)  # type: ignore[misc]
    ident = obs.identity
    ident.registry, ident.registry_path = registry, registry_path
    ident.desired_groups = {r.name: r for r in desired if isinstance(r, NASGroup)}
    etc = settings.identityRoot / "etc"
    ident.users = identity.parse_passwd(_read(etc / "passwd"))
    ident.groups = identity.parse_group(_read(etc / "group"))
    if (settings.run_dir / "private" / "passdb.tdb").exists() and (
        any(isinstance(r, NASUser) for r in desired) or registry["users"]
    ):
        result = await ctx.runner.run(["pdbedit", "-s", str(settings.config_file), "-L", "-w"], mutating=False,
                                      check=False, env=settings.env())
        ident.passdb = identity.parse_pdbedit_w(result.stdout)
    # What smbd serves now. Planning replaces each planned share's entry with what its manifest
    # says; a share not planned in a pass (backing off after a rejection) keeps the version that
    # works; a section stays until its NASShare's deletion removes it (a share that only looks
    # deleted, its manifest unreadable and deletions held, keeps being served).
    obs.shares.update(parse_shares(current or ""))
    obs.applied = dict(obs.shares)
    obs.names = {c.name.lower(): r for r, c in obs.shares.items()}
    try:
        obs.synced = current is not None and render(settings, obs.directories, obs.applied.values(),
                                                    obs.extra_global) == current
    except UnsafeValue:
        obs.synced = False
    return {"smb": obs}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _candidate(obs: SmbObservation) -> dict[str, ShareConfig]:
    """The shares to write: all planned ones, except that a share testparm refused in this pass
    keeps the version already served (or stays out if it was new)."""
    out = {}
    for name, config in obs.shares.items():
        if name not in obs.rejected:
            out[name] = config
        elif name in obs.applied:
            out[name] = obs.applied[name]
    return out


def _checked_render(obs: SmbObservation, shares: dict[str, ShareConfig]) -> str:
    try:
        return render(obs.settings, obs.directories, shares.values(), obs.extra_global)
    except UnsafeValue as e:  # e.g. a global setting; the shares were checked one by one already
        raise PermanentError(f"smb.conf not written: {e}", reason="UnsafeValue") from None


def _apply_action(obs: SmbObservation, what: str, share: str | None = None) -> Action:
    """Write smb.conf with everything planned so far in this pass and reload smbd: the first such
    action of a pass usually carries the whole pass (a group of shares is planned before any of it
    is applied), and the ones after it find the file already as they need it. When testparm refuses
    the combined file, ``share`` is tried alone on top of what is served, so one bad share cannot
    keep the others of its pass out."""

    async def apply(ctx: Context) -> None:
        if share is not None and obs.synced and obs.applied.get(share) == obs.shares.get(share):
            return  # an earlier action of this pass wrote this share already
        smbd.prepare_dirs(obs.settings, ctx.state_dir)
        _adopt_time_machine_databases(ctx, obs.shares.values())
        attempts = [_candidate(obs)]
        if share is not None and {**obs.applied, share: obs.shares[share]} != attempts[0]:
            attempts.append({**obs.applied, share: obs.shares[share]})
        for i, candidate in enumerate(attempts):
            try:
                text = _checked_render(obs, candidate)
                await smbd.apply_config(ctx, obs.settings, text)
                break
            except PermanentError:
                if i + 1 < len(attempts):
                    continue
                if share is not None:
                    obs.rejected.add(share)
                raise
        obs.current, obs.applied, obs.synced = text, candidate, True
        await _ensure_running(ctx, obs.settings)

    return Action(what, func=apply)


def _adopt_time_machine_databases(ctx: Context, shares: Any) -> None:
    """Before nasd kept the extended attributes of a file system without them for every share, the Time Machine
    plugin kept them for its shares, in ``<stateDir>/timemachine-<share>.tdb``: such a file becomes the
    dataset's database (once; never over one that exists), so the streams it holds are not lost."""
    for config in shares:
        new = config.options.get("xattr_tdb:file")
        old = ctx.state_dir / f"timemachine-{re.sub(r'[^A-Za-z0-9_.-]', '_', config.resource)}.tdb"
        if not new or not old.exists():
            continue
        if not os.path.exists(new):
            shutil.move(str(old), new)  # (copies where runDir is on another file system)
            ctx.log.info("moved %s to %s (the dataset's extended attributes)", old, new)
        else:  # a second Time Machine share on the same dataset: its old database cannot be merged
            ctx.log.warning("%s is left as it is: the dataset of share %s has a database already (%s); its "
                            "streams are not served", old, config.resource, new)


def _needs_start(ctx: Context, settings: SMBSettings) -> bool:
    """Supervised mode, in the daemon: smbd has not been started yet, or its first start failed
    (once it ran, the supervisor itself restarts it)."""
    if settings.mode != "supervised" or not ctx.watch:
        return False
    supervisor = ctx.cache.get("smb-supervisor")
    return supervisor is None or not supervisor.supervising


async def _ensure_running(ctx: Context, settings: SMBSettings) -> None:
    """Start smbd once there is a share to serve."""
    if not _needs_start(ctx, settings):
        return
    supervisor = ctx.cache.get("smb-supervisor")
    if supervisor is None:
        supervisor = smbd.Supervisor(ctx, settings)
        ctx.cache["smb-supervisor"] = supervisor
    await supervisor.start()


def _group_folder(obs: SmbObservation, dataset: ZDataset) -> str | None:
    """The group's name when the dataset's top folder is declared a group folder (a gid and a setgid mode)."""
    owner = dataset.spec.owner
    if owner is None or owner.gid is None or not owner.mode or not int(owner.mode, 8) & 0o2000:
        return None
    for group in [*obs.groups, *obs.identity.desired_groups.values()]:
        if group.spec.gid == owner.gid:
            return group.name
    for name, (gid, _) in obs.identity.groups.items():
        if gid == owner.gid:
            return name
    return None


@hookimpl
def plan_share(ctx: Context, share: NASShare, dataset: ZDataset, observed: Mapping[str, Any]) -> Plan | None:
    if share.spec.protocol != "smb":
        return None
    obs = _obs(observed)
    path = dataset.status.mountpoint
    if not path or not path.startswith("/"):
        raise TemporaryError(f"dataset {dataset.name} has no mountpoint yet", reason="DatasetNotReady")
    in_pod = obs.settings.mode == "pod"
    served_at = pod.container_path(share) if in_pod else path
    xattrs = filesystem.has_xattrs(ctx.cache, path)
    tdb_dir = pod.XATTRS if in_pod else obs.settings.run_dir / "xattrs"
    z = dataset.zfs_name  # (an export reaches the datasets below it too: crossmnt)
    nfs_shared = any(n == z or z.startswith(n + "/") or n.startswith(z + "/") for n in obs.nfs_datasets)
    base = features.share_features(share, xattrs=xattrs, nfs_shared=nfs_shared,
                                   tdb_file=str(tdb_dir / features.tdb_name(dataset.zfs_name)),
                                   group_folder=_group_folder(obs, dataset))
    try:
        config = share_config(share, served_at, _extra_options(ctx, share, dataset, base))
    except features.UnknownModule as e:
        return Plan(problem=Problem("UnsafeValue", f"{e} (asked for by a plugin)"))
    vfs = config.options.get("vfs objects", "").split()
    if "fruit" in vfs and "streams_xattr" not in vfs:
        return Plan(problem=Problem("StreamsNeeded", "namedStreams: false cannot hold while a Time Machine share is "
                                    "on this server: Apple's extensions, on every share then, need named streams"))
    missing = sorted(obs.missing_modules & set(vfs))
    if missing:
        return Plan(problem=Problem("VfsModuleMissing", f"the share needs Samba's VFS module(s) {', '.join(missing)}, "
                                    "which are not installed here: apt-get install samba-vfs-modules (the share "
                                    "is served once they are)"))
    # (in pod mode each share has its own smbd: names cannot clash)
    holder = share.name if obs.settings.mode == "pod" else obs.names.get(config.name.lower(), share.name)
    if holder != share.name:
        return Plan(problem=Problem("DuplicateShareName", f"NASShare {holder} already serves [{config.name}]"))
    try:
        render_share(config)  # the rest of the file was checked when it was written
    except UnsafeValue as e:
        return Plan(problem=Problem("UnsafeValue", str(e)))
    old = obs.shares.get(share.name)
    if old is not None and obs.names.get(old.name.lower()) == share.name:
        del obs.names[old.name.lower()]
    obs.shares[share.name] = config
    obs.names[config.name.lower()] = share.name
    smb = share.spec.smb
    assert smb is not None
    status = {
        "path": path,
        "unc": f"\\\\{obs.settings.host}\\{config.name}",
        "allowedUsers": list(smb.validUsers) or None,
        "allowedGroups": list(smb.validGroups) or None,
        "clientFeatures": features.summary(config.options, xattrs),
    }
    conditions: list[tuple[str, bool, str, str]] = []
    removed: list[str] = []
    if ctx.pm is not None and hasattr(ctx.pm.hook, "smb_share_status"):
        for part in ctx.pm.hook.smb_share_status(ctx=ctx, share=share, dataset=dataset):
            status.update((part or {}).get("status") or {})
            conditions += [c for c in (part or {}).get("conditions") or [] if c[0] != "Ready"]
            removed += [t for t in (part or {}).get("removeConditions") or [] if t != "Ready"]
    if in_pod:
        return _pod_plan(ctx, share, config, obs, path, status, conditions, removed)
    actions = []
    if not obs.synced or obs.applied.get(share.name) != config:
        actions.append(_apply_action(obs, f"write smb.conf with [{config.name}] and reload smbd", share.name))
    elif _needs_start(ctx, obs.settings):
        actions.append(Action("start smbd", func=lambda c: _ensure_running(c, obs.settings)))
    supervisor = ctx.cache.get("smb-supervisor") if obs.settings.mode == "supervised" and ctx.watch else None
    problem = None
    if supervisor is not None and supervisor.supervising and not supervisor.serving():
        problem = Problem(*supervisor.down_reason())  # (never Ready while no smbd nasd supervises serves it)
    return Plan(actions=actions, status=status, conditions=conditions, removed_conditions=removed, problem=problem)


def _pod_plan(ctx: Context, share: NASShare, config: ShareConfig, obs: SmbObservation, path: str,
              status: dict[str, Any], conditions: list[tuple[str, bool, str, str]], removed: list[str]) -> Plan:
    try:
        workload = pod.share_workload(share, config, path, obs.settings, obs.directories, obs.users, obs.groups,
                                      obs.extra_global)
    except (UnsafeValue, ValueError) as e:
        return Plan(problem=Problem("UnsafeValue", str(e)))
    planned = ctx.plan_workload(share, workload)
    if planned is not None and planned.actions and "xattr_tdb:file" in config.options:
        # the node's folder for the extended attributes the file system cannot keep, before the pod mounts it
        async def folder(c: Context) -> None:  # (root's: the pod's smbd opens it as root)
            (obs.settings.run_dir / "xattrs").mkdir(parents=True, exist_ok=True, mode=smbd.DIR_MODES["xattrs"])
        planned.actions.insert(0, Action("make the node's folder for extended attributes", func=folder))
    if planned is None:
        return Plan(problem=Problem("PodModeUnavailable", "plugins.smb.mode pod runs each share in a pod: it needs "
                                    "the Kubernetes plugin (nasd-kubernetes) configured; use mode supervised on a host"))
    if planned.problem:
        return Plan(problem=Problem("NameTaken", planned.problem))
    status = {**status, **planned.status}
    available = planned.status.get("podsAvailable", 0)
    conditions = conditions + [("PodAvailable", bool(available), "Available" if available else "NotAvailable",
                                "the share's pod runs" if available else
                                "the share's Deployment reports no available pod (yet): see its pod's events")]
    node = planned.status.get("node")
    if node:
        status["unc"] = f"\\\\{node}\\{config.name}"
    return Plan(actions=planned.actions, status=status, conditions=conditions, removed_conditions=removed)


def _pod_identity(ctx: Context, resource: Resource) -> Plan:
    """Pod mode: users and groups are made in each share's pod; here only check the password can reach it."""
    if not isinstance(resource, NASUser) or resource.spec.passwordSecretRef is None:
        return Plan()
    ref = resource.spec.passwordSecretRef
    if ref.file is not None:
        return Plan(problem=Problem("PasswordFileInPodMode", "a password file cannot reach a share's pod: put the "
                                    "password in a Kubernetes Secret (passwordSecretRef.name and key)"))
    password = identity.password_of(ref, ctx.read_secret)
    return Plan(problem=password) if isinstance(password, Problem) else Plan()


@hookimpl
def plan_resource(ctx: Context, resource: Resource, dependencies: Mapping[tuple[str, str], Resource],
                    observed: Mapping[str, Any]) -> Plan | None:
    if isinstance(resource, NASDirectory):
        if resource.spec.type != "local":
            return Plan(problem=Problem(
                "NotImplemented",
                f"{resource.spec.type} directories are rendered into smb.conf but joining one is not implemented yet",
            ))
        return Plan()
    if isinstance(resource, (NASGroup, NASUser)) and _obs(observed).settings.mode == "pod":
        return _pod_identity(ctx, resource)
    if isinstance(resource, NASGroup):
        obs = _obs(observed)
        return identity.plan_group(resource, obs.identity, obs.settings)
    if isinstance(resource, NASUser):
        obs = _obs(observed)
        plan = identity.plan_user(resource, obs.identity, obs.settings, _conf_for_tools(obs), ctx.read_secret)
        # smbpasswd and pdbedit read the passdb location from smb.conf: nasd's own must be in place
        # (in system mode, the distribution's file would send them to the system's passdb)
        if plan.actions and not (obs.current or "").startswith(HEADER):
            plan.actions.insert(0, _apply_action(obs, "write smb.conf"))
        return plan
    return None


def _conf_for_tools(obs: SmbObservation) -> Path:
    return obs.settings.config_file


@hookimpl
def plan_absent(ctx: Context, resource: Resource, observed: Mapping[str, Any]) -> Plan | None:
    mine = _is_smb(resource) or isinstance(resource, (NASUser, NASGroup, NASDirectory))
    if not mine:
        return None
    if observed.get("smb") is None and "smb_error" not in observed:
        return Plan()  # no smb.conf, no users or groups nasd made: nothing to undo
    if observed.get("smb") is not None and _obs(observed).settings.mode == "pod":
        if not _is_smb(resource):
            return Plan()  # identities live in the pods, which go with their shares
        planned = ctx.plan_workload(resource, None)
        return Plan(actions=planned.actions) if planned is not None else Plan()
    if _is_smb(resource):
        obs = _obs(observed)
        old = obs.shares.pop(resource.name, None)
        if old is not None and obs.names.get(old.name.lower()) == resource.name:
            del obs.names[old.name.lower()]  # its section name is free for another share in this pass
        if resource.name not in obs.applied and obs.synced:
            return Plan()  # not served: nothing to remove
        return Plan(actions=[_apply_action(obs, f"remove share {resource.name} from smb.conf")])
    if isinstance(resource, NASUser):
        obs = _obs(observed)
        return identity.plan_user_absent(resource, obs.identity, obs.settings, _conf_for_tools(obs))
    if isinstance(resource, NASGroup):
        obs = _obs(observed)
        return identity.plan_group_absent(resource, obs.identity, obs.settings)
    return Plan()  # a directory: nothing on the system to undo


@hookimpl
async def shutdown(ctx: Context) -> None:
    supervisor = ctx.cache.pop("smb-supervisor", None)
    if supervisor is not None:
        await supervisor.stop()


