"""The exports file as a pure function of the shares, and its parser.

Every token that reaches the file is checked here again, against its own allowlist, even
though the model validated it: a value that slipped through (a newline, a space before the
options, a ``(``, ``)`` or ``,``) would change what is exported to whom.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Sequence

from nasd.plugin import NASShare, covers_everyone

HEADER = (
    "# Written by nasd (the NFS plugin): every edit here is overwritten.\n"
    "# Add your own exports in another file of /etc/exports.d or in /etc/exports.\n"
)
_MARK = "# NASShare "
_HOST = re.compile(
    r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[0-9]{1,2})?"
    r"|[0-9A-Fa-f:]+(?:/[0-9]{1,3})?"
    r"|(?:\*\.?)?[A-Za-z0-9][A-Za-z0-9.-]*"
    r"|@[A-Za-z0-9_.-]+"
    r"|\*)$"
)
_PATH_SAFE = re.compile(r"[A-Za-z0-9_.:/+@=-]")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
#: every option nasd may write, with the pattern of its value (None: a flag)
OPTIONS: dict[str, re.Pattern[str] | None] = {
    "ro": None, "rw": None, "sync": None, "async": None, "no_subtree_check": None, "crossmnt": None,
    "root_squash": None, "no_root_squash": None, "all_squash": None,
    "anonuid": re.compile(r"^[0-9]{1,10}$"), "anongid": re.compile(r"^[0-9]{1,10}$"),
    "sec": re.compile(r"^(sys|krb5|krb5i|krb5p)(:(sys|krb5|krb5i|krb5p))*$"),
    "fsid": re.compile(r"^[1-9][0-9]{0,9}$"),
}
WORLD = ("*", "0.0.0.0/0", "::/0")


def is_world(host: str) -> bool:
    """``*``, or any network with a prefix of length 0 (``10.0.0.0/0`` means everyone to exportfs too)."""
    if host == "*":
        return True
    if "/" in host:
        try:
            return ipaddress.ip_network(host, strict=False).prefixlen == 0
        except ValueError:
            return False
    return False


class UnsafeValue(ValueError):
    """A value that must not reach the exports file; the message names the field."""


@dataclass(frozen=True)
class Export:
    """One share's line: its path and, per client, the options."""

    share: str
    path: str
    clients: tuple[tuple[str, tuple[str, ...]], ...]

    def line(self) -> str:
        return " ".join([escape_path(self.path)] + [f"{host}({','.join(opts)})" for host, opts in self.clients])


def escape_path(path: str) -> str:
    """The path as exports(5) reads it: anything but plain characters as a backslash and three octal
    digits (a space is ``\\040``), so no path can end the path field early."""
    if not path.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise UnsafeValue(f"path {path!r}: an export path is absolute and has no control characters")
    out = []
    for ch in path:
        if _PATH_SAFE.match(ch):
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return "".join(out)


def unescape_path(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), text.encode())
    return raw.decode(errors="replace")


def client_options(share: NASShare, rule_index: int) -> tuple[str, ...]:
    nfs = share.spec.nfs
    assert nfs is not None
    rule = nfs.clients[rule_index]
    opts = [rule.access, "sync" if rule.sync else "async", "no_subtree_check",
            *(["crossmnt"] if nfs.crossmnt else []),
            {"root": "root_squash", "all": "all_squash", "none": "no_root_squash"}[rule.squash]]
    if rule.anonuid is not None:
        opts.append(f"anonuid={rule.anonuid}")
    if rule.anongid is not None:
        opts.append(f"anongid={rule.anongid}")
    opts.append("sec=" + ":".join(dict.fromkeys(rule.security)))
    if nfs.fsid is not None:
        opts.append(f"fsid={nfs.fsid}")
    return tuple(opts)


def export_for(share: NASShare, path: str) -> Export:
    """The share's export, every host and option checked; raises UnsafeValue naming the field."""
    nfs = share.spec.nfs
    if nfs is None:
        raise UnsafeValue("spec.nfs: an nfs share needs nfs.clients")
    seen: dict[str, int] = {}
    clients = []
    for i, rule in enumerate(nfs.clients):
        opts = client_options(share, i)
        for host in rule.hosts:
            check_host(host, nfs.allowWorld, f"spec.nfs.clients[{i}].hosts")
            if host in seen:
                raise UnsafeValue(f"spec.nfs.clients[{i}].hosts: {host} is already in clients[{seen[host]}]; "
                                  "a host gets one rule (exportfs would use only the first)")
            seen[host] = i
            check_options(opts, f"spec.nfs.clients[{i}]")
            clients.append((host, opts))
    everyone = covers_everyone([h for h, _ in clients])  # (checked again here, whatever the model let through)
    if everyone and not nfs.allowWorld:
        raise UnsafeValue(f"spec.nfs.clients: the hosts together reach everyone ({everyone}); that needs "
                          "spec.nfs.allowWorld: true")
    return Export(share.name, path, tuple(clients))


def check_host(host: str, allow_world: bool, field: str) -> None:
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise UnsafeValue(f"{field}: {host!r} is not a host: use an IP address, a CIDR, a host name, "
                          "*.domain or @netgroup (no spaces, parentheses or commas)")
    if "/" in host:
        try:
            ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise UnsafeValue(f"{field}: {host!r} is not a valid network (address/prefix length)") from None
    if is_world(host) and not allow_world:
        raise UnsafeValue(f"{field}: exporting to everyone ({host}) needs spec.nfs.allowWorld: true")


def check_options(opts: tuple[str, ...], field: str) -> None:
    for opt in opts:
        key, _, value = opt.partition("=")
        if key not in OPTIONS:
            raise UnsafeValue(f"{field}: option {key!r} is not allowed; allowed: {', '.join(OPTIONS)}")
        pattern = OPTIONS[key]
        if (pattern is None) != (value == "" and "=" not in opt) or (pattern is not None and not pattern.fullmatch(value)):
            raise UnsafeValue(f"{field}: {opt!r} is not a valid value for {key}")


def render(lines: dict[str, str]) -> str:
    """The whole file from each share's line (``Export.line``), shares in name order, each line
    preceded by the share it belongs to."""
    out = [HEADER]
    for share, line in sorted(lines.items()):
        if not _NAME.fullmatch(share):
            raise UnsafeValue(f"metadata.name: {share!r} is not a resource name")
        if "\n" in line or "\r" in line or line.startswith("#"):
            raise UnsafeValue(f"NASShare {share}: an export line is one line")
        out.append(f"{_MARK}{share}\n{line}\n")
    return "".join(out)


def parse(text: str) -> dict[str, str]:
    """What nasd's own file exports now: share name -> its line (as written)."""
    out: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith(_MARK):
            current = line[len(_MARK):].strip()
        elif current is not None and line.strip() and not line.startswith("#"):
            out[current] = line
            current = None
    return out


def line_share(rendered: str, lineno: int) -> str | None:
    """The share whose export is on line ``lineno`` (1-based) of a rendered file."""
    lines = rendered.splitlines()
    if 2 <= lineno <= len(lines) and lines[lineno - 2].startswith(_MARK):
        return lines[lineno - 2][len(_MARK):].strip()
    return None


def mount_command(host: str, path: str, share: str, security: Sequence[str]) -> str:
    """What a Linux client runs to mount the share (NFS v4.2; the first Kerberos flavour if sys is not allowed)."""
    sec = "" if "sys" in security else f",sec={security[0]}"
    return f"mount -t nfs -o vers=4.2{sec} {shlex.quote(host + ':' + path)} /mnt/{share}"
