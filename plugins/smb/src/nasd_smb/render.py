"""smb.conf from models: a pure function. Every value is checked once more here, whatever the
models already refused, so nothing can open a new section, comment out the rest of a line,
substitute a variable or include another file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from nasd.plugin import NASDirectory, NASShare

from .settings import SMBSettings

_KEY = re.compile(r"^[a-z][a-z0-9 :_-]*[a-z0-9]$")
_FORBIDDEN_KEYS = {"include", "config file", "copy", "preexec", "postexec", "root preexec", "root postexec",
                   "magic script", "add user script", "delete user script", "message command", "print command"}
HEADER = "# Written by nasd. Edits are overwritten: change the NASShare resources instead."
_TAG = "# NASShare "  # the line before each share's section: which resource it belongs to
_RESOURCE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_GUEST = "\n\tguest ok = yes\n"  # (a rendered section's line: the server then maps bad users to guest)


class UnsafeValue(ValueError):
    pass


@dataclass
class ShareConfig:
    """One rendered share: its section name, path, and options in order."""

    name: str
    path: str
    options: dict[str, str] = field(default_factory=dict)
    resource: str = ""


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


#: the one parameter whose value is a strftime format (shadow_copy2 reads it raw: no % substitution)
_STRFTIME = re.compile(r"^(?:[A-Za-z0-9_.:-]|%[YmdHMS])+$")
#: the one substitution allowed in a path: the authenticated user's name (%u) as the last component
_PER_USER_PATH = re.compile(r"^(/[A-Za-z0-9_.:+-]+)+/%u$")


def check_pair(key: str, value: str) -> None:
    if not _KEY.match(key) or key in _FORBIDDEN_KEYS or "script" in key or "exec" in key or "command" in key:
        raise UnsafeValue(f"smb.conf parameter {key!r} is not allowed")
    if key == "shadow:format" and _STRFTIME.match(value):
        return
    if key == "path" and _PER_USER_PATH.match(value) and "/../" not in value:  # a folder per user (%u)
        return
    if any(c in value for c in "\n\r\0%\\") or value != value.strip():
        raise UnsafeValue(f"{key}: the value {value!r} has a newline, '%', a backslash or surrounding spaces")
    if value.startswith(("[", ";", "#")) or "]" in value or "[" in value:
        raise UnsafeValue(f"{key}: the value {value!r} may not contain '[' or ']' or start with ';' or '#'")


def share_config(share: NASShare, path: str, extra: dict[str, str] | None = None) -> ShareConfig:
    """The section for one SMB share at ``path`` (the dataset's mountpoint). ``extra``: what the SMB
    plugin's client features and other plugins add (see :mod:`.features`)."""
    smb = share.spec.smb
    assert smb is not None
    opts: dict[str, str] = {
        "path": path,
        "read only": _yes(smb.readOnly),
        "browseable": _yes(smb.browseable),
        "guest ok": _yes(smb.guestOk),
    }
    valid = list(smb.validUsers) + [f"@{g}" for g in smb.validGroups]
    if valid:
        opts["valid users"] = " ".join(valid)
    if smb.adminUsers:
        opts["admin users"] = " ".join(smb.adminUsers)
    if smb.writeList:
        opts["write list"] = " ".join(smb.writeList)
    if smb.hostsAllow:
        opts["hosts allow"] = " ".join(smb.hostsAllow)
    if smb.hostsDeny:
        opts["hosts deny"] = " ".join(smb.hostsDeny)
    if smb.createMask:
        opts["create mask"] = smb.createMask
    if smb.directoryMask:
        opts["directory mask"] = smb.directoryMask
    if smb.forceUser:
        opts["force user"] = smb.forceUser
    if smb.forceGroup:
        opts["force group"] = smb.forceGroup
    if smb.accessBasedShareEnum:
        opts["access based share enum"] = "yes"
    if smb.caseSensitive != "auto":
        opts["case sensitive"] = smb.caseSensitive
    if not smb.oplocks:
        opts["oplocks"] = "no"
    opts.update({k: v for k, v in (extra or {}).items() if v != "" or k != "vfs objects"})
    opts.update(smb.extraParameters)  # (vetted parameters, none of which the plugins set)
    return ShareConfig(name=smb.name or share.name, path=opts["path"], options=opts, resource=share.name)


def global_options(settings: SMBSettings, directories: Iterable[NASDirectory], guest: bool) -> dict[str, str]:
    run = settings.run_dir
    opts: dict[str, str] = {
        "server role": "standalone server",
        "workgroup": settings.workgroup,
        "server string": settings.serverString,
        "security": "user",
        "map to guest": "Bad User" if guest else "Never",
        "smb ports": str(settings.port),
        "disable netbios": "yes",
        "load printers": "no",
        "printing": "bsd",
        "printcap name": "/dev/null",
        "disable spoolss": "yes",
        "passdb backend": f"tdbsam:{run}/private/passdb.tdb",
        "lock directory": f"{run}/lock",
        "state directory": f"{run}/state",
        "cache directory": f"{run}/cache",
        "private dir": f"{run}/private",
        "pid directory": f"{run}/pid",
        "ncalrpc dir": f"{run}/ncalrpc",
        "binddns dir": f"{run}/binddns",
        "log file": f"{run}/log/smbd.log",
        "max log size": "10000",
        "usershare path": "",
    }
    if settings.interfaces:
        opts["interfaces"] = " ".join(settings.interfaces)
        opts["bind interfaces only"] = "yes"
    for d in sorted(directories, key=lambda d: d.name):
        # Rendered so they are not silently ignored; reported NotImplemented on the directory until
        # LDAP and AD membership are implemented. None of these changes how local users log in.
        if d.spec.type == "ldap" and d.spec.ldap:
            opts["ldap suffix"] = d.spec.ldap.baseDN
            if d.spec.ldap.bindDN:
                opts["ldap admin dn"] = d.spec.ldap.bindDN
        elif d.spec.type == "ad" and d.spec.ad:
            opts["realm"] = d.spec.ad.realm.upper()
    return opts


def render(settings: SMBSettings, directories: Iterable[NASDirectory], shares: Iterable[ShareConfig],
           extra_global: dict[str, str] | None = None) -> str:
    """The whole smb.conf. ``extra_global``: what other plugins add to [global] (never replacing what
    nasd sets itself). Raises UnsafeValue rather than write anything doubtful."""
    return render_file(settings, directories, [render_share(s) for s in shares], extra_global)


def render_file(settings: SMBSettings, directories: Iterable[NASDirectory], sections: Iterable[str],
                extra_global: dict[str, str] | None = None) -> str:
    """The whole smb.conf from the shares' sections (each as :func:`render_share` made it), in the order of
    their names. Raises UnsafeValue."""
    named = sorted(((section_name(s), s) for s in sections), key=lambda item: item[0].lower())
    lines = [HEADER, "[global]"]
    options = global_options(settings, directories, any(_GUEST in s + "\n" for _, s in named))
    for key, value in (extra_global or {}).items():
        if key in options:
            raise UnsafeValue(f"[global] {key} is set by nasd itself; a plugin cannot change it")
        options[key] = value
    for key, value in options.items():
        if value:
            check_pair(key, value)
        lines.append(f"\t{key} = {value}")
    seen: set[str] = set()
    for name, section in named:
        if name.lower() in seen:
            raise UnsafeValue(f"two shares are named {name!r}")
        seen.add(name.lower())
        lines.append("")
        lines.append(section)
    return "\n".join(lines) + "\n"


def section_name(section: str) -> str:
    """The share name of a section :func:`render_share` made (its second line is ``[name]``)."""
    return section.split("\n", 2)[1][1:-1]


def render_share(share: ShareConfig) -> str:
    """One share's section, without its trailing newline. Raises UnsafeValue."""
    if any(c in share.name for c in "[]\n\r%;#") or share.name.lower() in ("global", "homes", "printers"):
        raise UnsafeValue(f"share name {share.name!r} is not allowed")
    if not _RESOURCE.match(share.resource):
        raise UnsafeValue(f"resource name {share.resource!r} is not allowed")
    lines = [f"{_TAG}{share.resource}", f"[{share.name}]"]
    for key, value in share.options.items():
        check_pair(key, value)
        lines.append(f"\t{key} = {value}")
    return "\n".join(lines)


def parse_sections(text: str) -> dict[str, str]:
    """The share sections of smb.conf by the NASShare each belongs to, as :func:`render_share` makes them
    (so a section edited by hand is checked again, and one that no longer passes is left out)."""
    out = {}
    for resource, config in parse_shares(text).items():
        try:
            out[resource] = render_share(config)
        except UnsafeValue:
            continue
    return out


def parse_shares(text: str) -> dict[str, ShareConfig]:
    """The share sections of a file :func:`render` wrote, by the NASShare each belongs to (the
    comment line before it): what smbd serves now. Untagged sections and lines of any other shape
    are skipped (the file is nasd's own; the next write drops them)."""
    shares: dict[str, ShareConfig] = {}
    current: ShareConfig | None = None
    owner: str | None = None
    for line in text.split("\n"):
        if line.startswith(_TAG):
            owner = line[len(_TAG):].strip()
            current = None
        elif line.startswith("[") and line.endswith("]"):
            current = None
            if owner and line[1:-1].lower() != "global" and owner not in shares:
                current = ShareConfig(name=line[1:-1], path="", resource=owner)
                shares[owner] = current
            owner = None
        elif current is not None and line.startswith("\t") and " = " in line:
            key, _, value = line[1:].partition(" = ")
            current.options[key] = value
            if key == "path":
                current.path = value
    return shares
