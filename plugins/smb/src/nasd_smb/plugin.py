"""The SMB plugin: shares into smb.conf (a file shared by the shares, see :mod:`.conf`), local users and groups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pluggy

from nasd.plugin import (Action, ConditionChange, Context, NASDirectory, NASGroup, NASShare, NASUser, Observed,
                         PermanentError, Plan, Problem, Resource, SharedFile, TemporaryError, ZDataset, hookimpl)

from . import features, filesystem, hookspecs, identity, pod, smbd
from .conf import SmbConf, name_claim
from .hookspecs import SmbShareStatus
from .render import HEADER, ShareConfig, UnsafeValue, check_pair, global_options, render_share, share_config
from .settings import SMBSettings, load_settings

NAME = "smb"


@dataclass
class SmbObservation:
    settings: SMBSettings
    #: smb.conf, a section per share (None in pod mode: each share's pod has its own)
    conf: SharedFile[str] | None = None
    directories: list[NASDirectory] = field(default_factory=list)
    extra_global: dict[str, str] = field(default_factory=dict)  # [global] parameters other plugins add
    identity: identity.IdentityObservation = field(default_factory=identity.IdentityObservation)
    nfs_datasets: set[str] = field(default_factory=set)  # datasets (zfs names) exported over NFS: they keep POSIX locks
    users: list[NASUser] = field(default_factory=list)  # pod mode: every pod creates these
    groups: list[NASGroup] = field(default_factory=list)
    missing_modules: set[str] = field(default_factory=set)  # VFS modules of the allowlist Samba lacks here


def _is_smb(r: Resource) -> bool:
    return isinstance(r, NASShare) and r.spec.protocol == "smb"


def _obs(observed: Observed) -> SmbObservation:
    obs = observed.of(NAME, SmbObservation)  # (raises what went wrong while observing)
    if obs is None:
        raise TemporaryError("cannot read SMB state: not observed", reason="ObserveFailed")
    return obs


def _extra_options(ctx: Context, share: NASShare, dataset: ZDataset, base: dict[str, str]) -> dict[str, str]:
    """``base`` (the client features) and what other plugins add; ``vfs objects`` merged in nasd's order.
    Raises UnknownModule."""
    out = dict(base)
    vfs = [base.get("vfs objects", "")]
    for part in ctx.hooks.call("smb_share_options", share=share, dataset=dataset):
        for key, value in part.items():
            if key == "vfs objects":
                vfs.append(str(value))
            else:
                out[key] = str(value)
    out["vfs objects"] = features.merge_vfs(*vfs)
    return out


def _global_extras(ctx: Context, shares: list[NASShare], settings: SMBSettings) -> dict[str, str]:
    out: dict[str, str] = {}
    own = set(global_options(settings, [], False))
    for part in ctx.hooks.call("smb_global_options", shares=shares):
        for key, value in part.items():
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


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


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


def _pod_identity(ctx: Context, resource: Resource) -> Plan:
    """Pod mode: users and groups are made in each share's pod; here only check the password can reach it."""
    if not isinstance(resource, NASUser) or resource.spec.passwordSecretRef is None:
        return Plan()
    ref = resource.spec.passwordSecretRef
    if ref.file is not None:
        return Plan(problem=Problem("PasswordFileInPodMode", "a password file cannot reach a share's pod: put the "
                                    "password in a Kubernetes Secret (passwordSecretRef.name and key)"))
    password = identity.password_of(ref, ctx.hooks.read_secret)
    return Plan(problem=password) if isinstance(password, Problem) else Plan()


class SMBPlugin:
    """SMB shares served by Samba (nasd's own supervised smbd, the system's, or one pod per share), and local
    users and groups."""

    def __init__(self) -> None:
        #: ``plugins.smb`` of the configuration, read at the first observation
        self.settings: SMBSettings | None = None
        #: the smbd nasd runs (supervised mode, in the daemon), once a share needed it
        self.supervisor: smbd.Supervisor | None = None
        #: held while smbd is started: the shares of a group are applied concurrently, and each may start it
        self._starting = asyncio.Lock()
        #: mount point -> whether its file system keeps extended attributes
        self.xattrs: dict[str, bool] = {}
        #: smb.conf's sections as parsed before, by their text (see SmbConf.parse)
        self.parsed_sections: dict[str, dict[str, str]] = {}
        #: the last smb.conf rendered, with what it was made of (see SmbConf.render)
        self.rendered: dict[str, Any] = {}
        #: what every share's section depends on, as the last observation saw it (see :meth:`_shared_inputs`)
        self.shared_inputs: tuple[Any, ...] | None = None

    def _settings(self, ctx: Context) -> SMBSettings:
        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME), ctx.state_dir)
        return self.settings

    @hookimpl
    def addhooks(self, pluginmanager: pluggy.PluginManager) -> None:
        pluginmanager.add_hookspecs(hookspecs)

    @hookimpl
    async def observe(self, ctx: Context, desired: list[Resource]) -> SmbObservation | None:
        mine = [r for r in desired if _is_smb(r) or isinstance(r, (NASDirectory, NASUser, NASGroup))]
        try:
            settings = self._settings(ctx)
        except PermanentError:
            if mine:
                raise  # (each SMB resource says what is wrong with the settings)
            return None
        zfs_names = {r.name: r.zfs_name for r in desired if isinstance(r, ZDataset)}
        nfs = {zfs_names[r.spec.dataset] for r in desired
               if isinstance(r, NASShare) and r.spec.protocol == "nfs" and r.spec.dataset in zfs_names}
        directories = [r for r in desired if isinstance(r, NASDirectory)]
        extra_global = _global_extras(ctx, [r for r in desired if _is_smb(r)], settings)  # type: ignore[misc]
        self._shared_inputs(ctx, desired, extra_global, nfs)
        if settings.mode == "pod":  # nothing on the host: each share's pod has its smbd and identities (no I/O:
            # observed even with no share left, so that the last share's deletion still removes its pod)
            return SmbObservation(
                settings=settings, directories=directories, nfs_datasets=nfs, extra_global=extra_global,
                users=[r for r in desired if isinstance(r, NASUser)],
                groups=[r for r in desired if isinstance(r, NASGroup)])
        registry_path = settings.run_dir / "nasd-identities.json"
        registry = identity.load_registry(registry_path)
        if not mine and not settings.config_file.exists() and not registry["users"] and not registry["groups"] \
                and not any(registry["creating"].values()):
            return None  # no SMB here at all: not even a file read more
        # What smbd serves now: planning replaces each planned share's section with what its manifest says; a
        # share not planned in a pass (backing off after a rejection) keeps the version that works; a section
        # stays until its NASShare's deletion removes it (a share that only looks deleted, its manifest
        # unreadable and deletions held, keeps being served).
        smb_conf = SmbConf(settings, directories, extra_global, self.parsed_sections, self.rendered)
        conf = SharedFile.read(settings.config_file, smb_conf)
        smb_conf.baseline = conf.current if conf.synced else None
        obs = SmbObservation(settings=settings, conf=conf, directories=directories, extra_global=extra_global,
                             nfs_datasets=nfs, missing_modules=filesystem.missing_vfs_modules(features.VFS_ORDER))
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
                                          check=False)
            ident.passdb = identity.parse_pdbedit_w(result.stdout)
        return obs

    def _shared_inputs(self, ctx: Context, desired: list[Resource], extra_global: dict[str, str],
                       nfs: set[str]) -> None:
        """A pass may plan only the shares that changed (the core's incremental pass), while some changes reach
        every share's section: the first Time Machine share (Apple's extensions on every share), [global] options
        other plugins add, a dataset exported over NFS too (POSIX locks). When one of those changed since the last
        observation, ask for a pass that plans every share."""
        any_tm = any(_is_smb(r) and r.spec.smb is not None and r.spec.smb.timeMachine is not None  # type: ignore
                     and r.spec.smb.timeMachine.enabled for r in desired)  # type: ignore[attr-defined]
        inputs = (tuple(extra_global.items()), tuple(sorted(nfs)), any_tm)
        if self.shared_inputs is not None and inputs != self.shared_inputs:
            ctx.request_reconcile("smb: what every share's section depends on changed")
        self.shared_inputs = inputs

    # -- smbd --------------------------------------------------------------------------------------------------

    def _needs_start(self, ctx: Context, settings: SMBSettings) -> bool:
        """Supervised mode, in the daemon: smbd has not been started yet, or its first start failed
        (once it ran, the supervisor itself restarts it)."""
        if settings.mode != "supervised" or not ctx.watch:
            return False
        return self.supervisor is None or not self.supervisor.supervising

    async def _ensure_running(self, ctx: Context, settings: SMBSettings) -> None:
        """Start smbd once there is a share to serve (one start, however many shares ask at once)."""
        async with self._starting:
            if not self._needs_start(ctx, settings):
                return
            if self.supervisor is None:
                self.supervisor = smbd.Supervisor(ctx, settings)
            await self.supervisor.start()

    def _write(self, obs: SmbObservation, what: str, share: str | None) -> Action:
        """smb.conf with every share planned so far in this pass, checked and reloaded (the first such action of a
        pass does it for the whole pass: see SharedFile), then smbd started if it is not yet; ``share``'s outcome."""
        async def write(ctx: Context) -> None:
            assert obs.conf is not None
            if await obs.conf.apply(ctx):
                await self._ensure_running(ctx, obs.settings)
            obs.conf.raise_for(share)

        return Action(what, func=write)

    # -- planning ----------------------------------------------------------------------------------------------

    @hookimpl
    def plan_share(self, ctx: Context, share: NASShare, dataset: ZDataset, observed: Observed) -> Plan | None:
        if share.spec.protocol != "smb":
            return None
        obs = _obs(observed)
        path = dataset.status.mountpoint
        if not path or not path.startswith("/"):
            raise TemporaryError(f"dataset {dataset.name} has no mountpoint yet", reason="DatasetNotReady")
        in_pod = obs.settings.mode == "pod"
        served_at = pod.container_path(share) if in_pod else path
        xattrs = filesystem.has_xattrs(self.xattrs, path)
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
            return Plan(problem=Problem("StreamsNeeded", "namedStreams: false cannot hold while a Time Machine share "
                                        "is on this server: Apple's extensions, on every share then, need named "
                                        "streams"))
        missing = sorted(obs.missing_modules & set(vfs))
        if missing:
            return Plan(problem=Problem("VfsModuleMissing", f"the share needs Samba's VFS module(s) "
                                        f"{', '.join(missing)}, which are not installed here: apt-get install "
                                        "samba-vfs-modules (the share is served once they are)"))
        # (in pod mode each share has its own smbd: names cannot clash)
        holder = obs.conf.holder(name_claim(config.name)) if obs.conf is not None else None
        if holder is not None and holder != share.name:
            return Plan(problem=Problem("DuplicateShareName", f"NASShare {holder} already serves [{config.name}]"))
        try:
            section = render_share(config)
        except UnsafeValue as e:
            return Plan(problem=Problem("UnsafeValue", str(e)))
        smb = share.spec.smb
        assert smb is not None
        status: dict[str, Any] = {
            "path": path,
            "unc": f"\\\\{obs.settings.host}\\{config.name}",
            "allowedUsers": list(smb.validUsers) or None,
            "allowedGroups": list(smb.validGroups) or None,
            "clientFeatures": features.summary(config.options, xattrs),
        }
        conditions: list[ConditionChange] = []
        removed: list[str] = []
        part: SmbShareStatus
        for part in ctx.hooks.call("smb_share_status", share=share, dataset=dataset):
            status.update(part.status)
            conditions += part.conditions
            removed += [t for t in part.remove_conditions if t != "Ready"]
        tm = smb.timeMachine
        # (the timeMachine field is the Time Machine plugin's to serve: without it the share is plain SMB)
        no_tm = Problem("TimeMachineNotInstalled", "the share asks for Time Machine (smb.timeMachine.enabled) but no "
                        "installed plugin serves it: pip install nasd-timemachine, or remove smb.timeMachine; "
                        "meanwhile it is served as a plain share") \
            if tm is not None and tm.enabled and "timeMachine" not in status else None
        if in_pod:
            plan = self._pod_plan(ctx, share, config, obs, path, status, conditions, removed)
            plan.problem = plan.problem or no_tm
            return plan
        assert obs.conf is not None
        actions = []
        if obs.conf.set(share.name, section):
            actions.append(self._write(obs, f"write smb.conf with [{config.name}] and reload smbd", share.name))
        elif self._needs_start(ctx, obs.settings):
            actions.append(Action("start smbd", func=lambda c: self._ensure_running(c, obs.settings)))
        supervisor = self.supervisor if obs.settings.mode == "supervised" and ctx.watch else None
        problem = no_tm
        if supervisor is not None and supervisor.supervising and not supervisor.serving():
            problem = Problem(*supervisor.down_reason())  # (never Ready while no smbd nasd supervises serves it)
        return Plan(actions=actions, status=status, conditions=conditions, removed_conditions=removed, problem=problem)

    def _pod_plan(self, ctx: Context, share: NASShare, config: ShareConfig, obs: SmbObservation, path: str,
                  status: dict[str, Any], conditions: list[ConditionChange], removed: list[str]) -> Plan:
        try:
            workload = pod.share_workload(share, config, path, obs.settings, obs.directories, obs.users, obs.groups,
                                          obs.extra_global)
        except (UnsafeValue, ValueError) as e:
            return Plan(problem=Problem("UnsafeValue", str(e)))
        planned = ctx.hooks.plan_workload(share, workload)
        if planned is not None and planned.actions and "xattr_tdb:file" in config.options:
            # the node's folder for the extended attributes the file system cannot keep, before the pod mounts it
            async def folder(c: Context) -> None:  # (root's: the pod's smbd opens it as root)
                (obs.settings.run_dir / "xattrs").mkdir(parents=True, exist_ok=True, mode=smbd.DIR_MODES["xattrs"])
            planned.actions.insert(0, Action("make the node's folder for extended attributes", func=folder))
        if planned is None:
            return Plan(problem=Problem("PodModeUnavailable", "plugins.smb.mode pod runs each share in a pod: it "
                                        "needs the Kubernetes plugin (nasd-kubernetes) configured; use mode "
                                        "supervised on a host"))
        if planned.problem:
            return Plan(problem=Problem("NameTaken", planned.problem))
        status = {**status, **planned.status}
        available = planned.status.get("podsAvailable", 0)
        conditions = conditions + [ConditionChange(
            "PodAvailable", bool(available), "Available" if available else "NotAvailable",
            "the share's pod runs" if available else
            "the share's Deployment reports no available pod (yet): see its pod's events")]
        node = planned.status.get("node")
        if node:
            status["unc"] = f"\\\\{node}\\{config.name}"
        return Plan(actions=planned.actions, status=status, conditions=conditions, removed_conditions=removed)

    @hookimpl
    def plan_resource(self, ctx: Context, resource: Resource, dependencies: Mapping[tuple[str, str], Resource],
                      observed: Observed) -> Plan | None:
        if isinstance(resource, NASDirectory):
            if resource.spec.type != "local":
                return Plan(problem=Problem(
                    "NotImplemented",
                    f"{resource.spec.type} directories are rendered into smb.conf but joining one is not implemented "
                    "yet",
                ))
            return Plan()
        if not isinstance(resource, (NASGroup, NASUser)):
            return None
        obs = _obs(observed)
        if obs.settings.mode == "pod":
            return _pod_identity(ctx, resource)
        if isinstance(resource, NASGroup):
            return identity.plan_group(resource, obs.identity, obs.settings)
        assert obs.conf is not None
        plan = identity.plan_user(resource, obs.identity, obs.settings, obs.settings.config_file,
                                  ctx.hooks.read_secret)
        # smbpasswd and pdbedit read the passdb location from smb.conf: nasd's own must be in place
        # (in system mode, the distribution's file would send them to the system's passdb)
        if plan.actions and not (obs.conf.current or "").startswith(HEADER):
            plan.actions.insert(0, self._write(obs, "write smb.conf", None))
        return plan

    @hookimpl
    def plan_absent(self, ctx: Context, resource: Resource, observed: Observed) -> Plan | None:
        if not (_is_smb(resource) or isinstance(resource, (NASUser, NASGroup, NASDirectory))):
            return None
        obs = observed.of(NAME, SmbObservation)  # (raises what went wrong while observing)
        if obs is None:
            return Plan()  # no smb.conf, no users or groups nasd made: nothing to undo
        if obs.settings.mode == "pod":
            if not _is_smb(resource):
                return Plan()  # identities live in the pods, which go with their shares
            planned = ctx.hooks.plan_workload(resource, None)
            return Plan(actions=planned.actions) if planned is not None else Plan()
        assert obs.conf is not None
        if _is_smb(resource):
            if not obs.conf.remove(resource.name):  # (its section name is free for another share in this pass)
                return Plan()  # not served: nothing to remove
            return Plan(actions=[self._write(obs, f"remove share {resource.name} from smb.conf", resource.name)])
        if isinstance(resource, NASUser):
            return identity.plan_user_absent(resource, obs.identity, obs.settings, obs.settings.config_file)
        if isinstance(resource, NASGroup):
            return identity.plan_group_absent(resource, obs.identity, obs.settings)
        return Plan()  # a directory: nothing on the system to undo

    @hookimpl
    async def shutdown(self, ctx: Context) -> None:
        supervisor, self.supervisor = self.supervisor, None
        if supervisor is not None:
            await supervisor.stop()
