"""Local users and groups: unix accounts (for file ownership) and Samba accounts (passdb).

Planning is pure over an :class:`IdentityObservation`; the commands are shadow's useradd/
usermod/userdel/groupadd/groupmod/groupdel with ``--prefix`` (the identity root: ``/`` on a
host, a private folder in tests) and Samba's smbpasswd/pdbedit. nasd only changes accounts it
created (kept in a registry under its state directory).

An account is noted in the registry as being created (its name and id) before useradd/groupadd runs, and
taken into the registry once it exists. So a nasd killed between the two finds, at its next start, an
account it was creating with the id it gave: it takes it as its own. An account that exists without such a
note, or with another id, was made by someone else and is left alone.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nasd.plugin import Action, NASGroup, NASUser, Plan, Problem, SecretRef, write_json

from .secret_files import SecretFileError, check_password, read_secret_file
from .settings import SMBSettings


@dataclass
class IdentityObservation:
    users: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # name -> uid, gid, gecos
    groups: dict[str, tuple[int, list[str]]] = field(default_factory=dict)  # name -> gid, members
    passdb: dict[str, str] = field(default_factory=dict)  # name -> account flags
    registry: dict[str, Any] = field(default_factory=lambda: {"users": [], "groups": [], "passwords": {},
                                                              "creating": {"users": {}, "groups": {}}})
    registry_path: Path | None = None
    desired_groups: dict[str, NASGroup] = field(default_factory=dict)


def parse_passwd(text: str) -> dict[str, tuple[int, int, str]]:
    out = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[2].isdigit() and parts[3].isdigit():
            out[parts[0]] = (int(parts[2]), int(parts[3]), parts[4])
    return out


def parse_group(text: str) -> dict[str, tuple[int, list[str]]]:
    out = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            out[parts[0]] = (int(parts[2]), [m for m in parts[3].split(",") if m])
    return out


def parse_pdbedit_w(text: str) -> dict[str, str]:
    """`pdbedit -L -w` (smbpasswd format) -> {user: flags}, e.g. '[U          ]' or '[DU         ]'."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 5:
            out[parts[0]] = parts[4]
    return out


def load_registry(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    creating = data.get("creating", {})
    return {"users": data.get("users", []), "groups": data.get("groups", []),
            "passwords": data.get("passwords", {}),
            "creating": {"users": creating.get("users", {}), "groups": creating.get("groups", {})}}


def _save(obs: IdentityObservation) -> None:
    assert obs.registry_path is not None
    write_json(obs.registry_path, obs.registry)


def _note_creating(obs: IdentityObservation, kind: str, name: str, number: int) -> Action:
    async def note(ctx: Any) -> None:
        obs.registry["creating"][kind][name] = number
        _save(obs)

    return Action(f"note that nasd is creating {kind[:-1]} {name} ({number})", func=note)


def _was_creating(obs: IdentityObservation, kind: str, name: str, number: int) -> bool:
    """Whether an existing account is one nasd was creating (with this id) when it was stopped."""
    return obs.registry["creating"][kind].get(name) == number


def _remember(obs: IdentityObservation, kind: str, name: str, present: bool) -> Action:
    async def record(ctx: Any) -> None:
        names = set(obs.registry[kind])
        names.add(name) if present else names.discard(name)
        obs.registry[kind] = sorted(names)
        obs.registry["creating"][kind].pop(name, None)
        if not present and kind == "users":
            obs.registry["passwords"].pop(name, None)
        _save(obs)

    return Action(f"{'remember' if present else 'forget'} {kind[:-1]} {name} as managed by nasd", func=record)


def _adopt(obs: IdentityObservation, kind: str, name: str) -> Action:
    action = _remember(obs, kind, name, True)
    action.description = f"remember {kind[:-1]} {name}, which nasd created before it was stopped, as managed by nasd"
    return action


def _password_hash(salt: str, password: str) -> str:
    return hashlib.sha256((salt + "\0" + password).encode()).hexdigest()


def read_secret(path: str) -> str:
    """The password in a root-only file (see :mod:`.secret_files`): never through a symlink, never from a
    FIFO, device, socket or directory, never more than a few KiB; refuses a file others can read or own."""
    return read_secret_file(path)


def plan_group(group: NASGroup, obs: IdentityObservation, settings: SMBSettings) -> Plan:
    name, gid = group.name, group.spec.gid
    prefix = ["--prefix", str(settings.identityRoot)]
    taken = [g for g, (other, _) in obs.groups.items() if other == gid and g != name]
    if taken:
        return Plan(problem=Problem("GIDInUse", f"gid {gid} already belongs to group {taken[0]}"))
    if name not in obs.groups:
        return Plan(actions=[_note_creating(obs, "groups", name, gid),
                             Action(f"create group {name} ({gid})", argv=["groupadd", *prefix, "-g", str(gid), name]),
                             _remember(obs, "groups", name, True)], status={"gid": gid})
    plan = Plan(status={"gid": gid})
    if name not in obs.registry["groups"]:
        if not _was_creating(obs, "groups", name, obs.groups[name][0]):
            return Plan(problem=Problem("Unmanaged", f"group {name} exists on this system and was not created by nasd"))
        plan.actions.append(_adopt(obs, "groups", name))
    if obs.groups[name][0] != gid:
        plan.actions.append(Action(f"change gid of {name} to {gid}", argv=["groupmod", *prefix, "-g", str(gid), name]))
    return plan


def member_groups(user: NASUser, groups: dict[str, NASGroup], managed: Any) -> list[str]:
    """The user's supplementary groups: its spec's, and the NASGroups in ``managed`` that list it as a
    member (never a system group such as wheel); never its primary group."""
    names = set(user.spec.groups) | {g for g, res in groups.items() if user.name in res.spec.members and g in managed}
    names.discard(user.spec.primaryGroup or "")
    return sorted(names)


def supplementary_groups(user: NASUser, obs: IdentityObservation) -> list[str]:
    return member_groups(user, obs.desired_groups, obs.registry["groups"])


def password_of(ref: SecretRef, secret_reader: Callable[[SecretRef], str | None]) -> str | Problem:
    """The password a reference points to (a root-only file, or a Kubernetes Secret through
    ``secret_reader``), or the Problem that says why it cannot be had (its reason names what is wrong:
    ``SecretNotRegularFile``, ``SecretIsSymlink``, ``SecretTooLarge``, ``SecretNotPrivate``, ...)."""
    try:
        if ref.file is not None:
            return read_secret(ref.file)
        password = secret_reader(ref)
        if password is None:
            return Problem("SecretNotSupported", "a Kubernetes Secret reference needs the Kubernetes plugin "
                           "(nasd-kubernetes); on a single host use passwordSecretRef.file")
        return check_password(f"Secret {ref.name} key {ref.key}", password.rstrip("\n"))
    except SecretFileError as e:
        return Problem(e.reason, str(e))
    except (OSError, ValueError) as e:
        return Problem("PasswordUnreadable", str(e))
    except KeyError as e:
        return Problem("SecretNotFound", str(e.args[0]) if e.args else str(e))


def plan_user(user: NASUser, obs: IdentityObservation, settings: SMBSettings, smb_conf: Path,
              secret_reader: Callable[[SecretRef], str | None] = lambda ref: None) -> Plan:
    """``secret_reader`` answers Kubernetes Secret references (``ctx.hooks.read_secret``)."""
    name, uid = user.name, user.spec.uid
    prefix = ["--prefix", str(settings.identityRoot)]
    plan = Plan(status={"uid": uid})
    taken = [u for u, (other, _, _) in obs.users.items() if other == uid and u != name]
    if taken:
        return Plan(problem=Problem("UIDInUse", f"uid {uid} already belongs to user {taken[0]}"))
    groups = supplementary_groups(user, obs)
    primary = user.spec.primaryGroup
    primary_gid = obs.desired_groups[primary].spec.gid if primary and primary in obs.desired_groups else None
    gecos = user.spec.fullName or ""
    if name not in obs.users:
        argv = ["useradd", *prefix, "-u", str(uid), "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin"]
        argv += ["-g", str(primary_gid)] if primary_gid is not None else ["-U"]
        if groups:
            argv += ["-G", ",".join(groups)]
        if gecos:
            argv += ["-c", gecos]
        plan.actions += [_note_creating(obs, "users", name, uid), Action(f"create user {name} ({uid})",
                                                                          argv=[*argv, name]),
                         _remember(obs, "users", name, True)]
    elif name not in obs.registry["users"] and not _was_creating(obs, "users", name, obs.users[name][0]):
        return Plan(problem=Problem("Unmanaged", f"user {name} exists on this system and was not created by nasd"))
    else:
        if name not in obs.registry["users"]:
            plan.actions.append(_adopt(obs, "users", name))
        have_uid, have_gid, have_gecos = obs.users[name]
        have_groups = sorted(g for g, (_, members) in obs.groups.items() if name in members)
        argv = ["usermod", *prefix]
        if have_uid != uid:
            argv += ["-u", str(uid)]
        if primary_gid is not None and have_gid != primary_gid:
            argv += ["-g", str(primary_gid)]
        if have_groups != groups:
            argv += ["-G", ",".join(groups)]
        if have_gecos != gecos:
            argv += ["-c", gecos]
        if len(argv) > 3:
            plan.actions.append(Action(f"update user {name}", argv=[*argv, name]))

    ref = user.spec.passwordSecretRef
    if ref is None:
        return plan
    password = password_of(ref, secret_reader)
    if isinstance(password, Problem):
        plan.problem = password
        return plan
    stored = obs.registry["passwords"].get(name)
    salt = stored.split("$", 1)[0] if stored else secrets.token_hex(8)
    wanted = f"{salt}${_password_hash(salt, password)}"
    if name not in obs.passdb or stored != wanted:
        plan.actions.append(_set_password(name, password, wanted, obs, smb_conf))
    disabled = "D" in obs.passdb.get(name, "")
    if user.spec.disabled != disabled or (user.spec.disabled and name not in obs.passdb):
        flag = "-d" if user.spec.disabled else "-e"
        plan.actions.append(Action(f"{'disable' if user.spec.disabled else 'enable'} SMB login of {name}",
                                   argv=["smbpasswd", "-c", str(smb_conf), flag, name]))
    return plan


def _set_password(name: str, password: str, record: str, obs: IdentityObservation, smb_conf: Path) -> Action:
    async def set_password(ctx: Any) -> None:
        await ctx.runner.run(["smbpasswd", "-c", str(smb_conf), "-s", "-a", name], mutating=True,
                             input=f"{password}\n{password}\n")
        obs.registry["passwords"][name] = record
        assert obs.registry_path is not None
        write_json(obs.registry_path, obs.registry)

    return Action(f"set the SMB password of {name}", func=set_password)


def plan_user_absent(user: NASUser, obs: IdentityObservation, settings: SMBSettings, smb_conf: Path) -> Plan:
    name = user.name
    ours = name in obs.registry["users"] or (name in obs.users and _was_creating(obs, "users", name,
                                                                                 obs.users[name][0]))
    plan = Plan()
    if name in obs.passdb and ours:
        plan.actions.append(Action(f"remove SMB account {name}",
                                   argv=["pdbedit", "-s", str(smb_conf), "-x", "-u", name]))
    if name in obs.users and ours:
        plan.actions.append(Action(f"remove user {name}", argv=["userdel", "--prefix", str(settings.identityRoot),
                                                                 name]))
    if name in obs.registry["users"] or name in obs.registry["creating"]["users"]:
        plan.actions.append(_remember(obs, "users", name, False))
    return plan


def plan_group_absent(group: NASGroup, obs: IdentityObservation, settings: SMBSettings) -> Plan:
    name = group.name
    ours = name in obs.registry["groups"] or (name in obs.groups and _was_creating(obs, "groups", name,
                                                                                   obs.groups[name][0]))
    plan = Plan()
    if name in obs.groups and ours:
        plan.actions.append(Action(f"remove group {name}", argv=["groupdel", "--prefix", str(settings.identityRoot),
                                                                  name]))
    if name in obs.registry["groups"] or name in obs.registry["creating"]["groups"]:
        plan.actions.append(_remember(obs, "groups", name, False))
    return plan
