"""Pod mode: each SMB share is served by its own smbd, in a pod on the node that holds its data.

The share's smb.conf comes from the same renderer as host mode, with paths of the container:
the dataset's mountpoint is seen at ``/shares/<share>``, Samba keeps its state under
``/var/lib/nasd-smb``. The pod starts with a small script (also rendered here) that creates the
local groups and users nasd knows, with their uids and gids (numeric owners are the same as on
the host), sets each user's SMB password from the Kubernetes Secret its NASUser names, and then
runs smbd in the foreground. Users whose password is a host file cannot log in to a pod; they are
created without one. Pure functions: the Kubernetes plugin turns the workload into objects.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from nasd.plugin import HostPath, NASDirectory, NASGroup, NASShare, NASUser, Port, SecretFile, Workload

from .identity import member_groups
from .render import ShareConfig, render
from .settings import SMBSettings
from .smbd import DIR_MODES

RUN_DIR = Path("/var/lib/nasd-smb")
CONF = "/etc/nasd-smb/smb.conf"
START = "/etc/nasd-smb/start.sh"
SECRETS = "/etc/nasd-smb/passwords"
SHARES = "/shares"
#: where a pod's smbd keeps the extended attributes of a file system without them (zfs-fuse): the node's
#: ``<runDir>/xattrs``, the same database the host's smbd would use, so they outlive the pod
XATTRS = RUN_DIR / "xattrs"


def container_path(share: NASShare) -> str:
    return f"{SHARES}/{share.name}"


def workload_name(share: NASShare) -> str:
    """A DNS label: ``smb-<share>``; when the share's name is not one as it is (dots, length), a hash of
    the whole name is added, so ``a.b`` and ``a-b`` never get the same pod."""
    plain = "smb-" + share.name
    if "." not in share.name and len(plain) <= 50:
        return plain
    digest = hashlib.sha256(share.name.encode()).hexdigest()[:8]
    return ("smb-" + share.name.replace(".", "-"))[:41].rstrip("-") + "-" + digest


def pod_settings(settings: SMBSettings) -> SMBSettings:
    return settings.model_copy(update={"runDir": RUN_DIR, "configFile": Path(CONF), "port": 445, "interfaces": [],
                                       "identityRoot": Path("/")})


def start_script(users: list[NASUser], groups: list[NASGroup], passwords: dict[str, str]) -> str:
    """The container's entry: identities, passwords, then smbd. Every name is a checked resource name
    and every number an int; they are quoted all the same."""
    q = shlex.quote
    lines = ["#!/bin/sh", "# written by nasd: the identities of this share's pod, then smbd", "set -eu",
             f"mkdir -p {q(str(RUN_DIR))}", f"chmod 0755 {q(str(RUN_DIR))}"]
    for sub, mode in DIR_MODES.items():  # (the modes Samba expects: see smbd.DIR_MODES)
        lines.append(f"mkdir -p {q(str(RUN_DIR / sub))} && chmod {mode:04o} {q(str(RUN_DIR / sub))}")
    gids = {g.name: g.spec.gid for g in groups}
    for g in sorted(groups, key=lambda g: g.name):
        lines.append(f"getent group {q(g.name)} >/dev/null || groupadd -g {int(g.spec.gid)} {q(g.name)}")
    for u in sorted(users, key=lambda u: u.name):
        primary = u.spec.primaryGroup
        group_arg = f"-g {int(gids[primary])}" if primary in gids else "-U"
        supplementary = [g for g in member_groups(u, {g.name: g for g in groups}, gids) if g in gids]
        extra = f" -G {q(','.join(supplementary))}" if supplementary else ""
        lines.append(f"getent passwd {q(u.name)} >/dev/null || useradd -M -d /nonexistent -s /usr/sbin/nologin "
                     f"-u {int(u.spec.uid)} {group_arg}{extra} {q(u.name)}")
        if u.name in passwords:
            path = q(passwords[u.name])
            lines.append(f"pw=$(cat {path}); printf '%s\\n%s\\n' \"$pw\" \"$pw\" | "
                         f"smbpasswd -c {q(CONF)} -s -a {q(u.name)} >/dev/null")
            if u.spec.disabled:
                lines.append(f"smbpasswd -c {q(CONF)} -d {q(u.name)} >/dev/null")
    lines.append(f"exec smbd --foreground --no-process-group --debug-stdout -s {q(CONF)}")
    return "\n".join(lines) + "\n"


def share_workload(share: NASShare, config: ShareConfig, mountpoint: str, settings: SMBSettings,
                   directories: list[NASDirectory], users: list[NASUser], groups: list[NASGroup],
                   extra_global: dict[str, str]) -> Workload:
    """The pod that serves ``share``: ``config`` must have been made for :func:`container_path`."""
    local = {d.name for d in directories if d.spec.type == "local"}
    users = [u for u in users if u.spec.directory in local]
    groups = [g for g in groups if g.spec.directory in local]
    secret_files, passwords = [], {}
    for u in users:
        ref = u.spec.passwordSecretRef
        if ref is not None and ref.name is not None and ref.key is not None:
            path = f"{SECRETS}/{u.name}"
            secret_files.append(SecretFile(container=path, secret=ref.name, key=ref.key))
            passwords[u.name] = path
    conf = render(pod_settings(settings), directories, [config], extra_global)
    return Workload(
        name=workload_name(share),
        image=settings.podImage,
        command=("/bin/sh", START),
        files=((CONF, conf), (START, start_script(users, groups, passwords))),
        secret_files=tuple(secret_files),
        host_paths=(HostPath(host=mountpoint, container=container_path(share)),
                    *([HostPath(host=str(settings.run_dir / "xattrs"), container=str(XATTRS))]
                      if "xattr_tdb:file" in config.options else [])),
        ports=(Port(name="smb", port=445),),
        service_type=settings.serviceType,
    )
