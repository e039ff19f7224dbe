"""How Macs find Time Machine shares: mDNS (Bonjour) records, published through avahi-daemon when it runs
(a service file, written atomically) or from nasd itself with python-zeroconf, and checked by browsing.

Samba registers its own records only when smbd starts; these follow the shares as they come and go.
The records (what Apple's own servers publish):

- ``_smb._tcp`` on the SMB port;
- ``_adisk._tcp`` (port 9) with TXT ``sys=waMa=0,adVF=0x100`` and, per Time Machine share,
  ``dkN=adVN=<share>,adVF=0x82,adVU=<uuid>`` (0x82: SMB, Time Machine); the uuid is stable per
  host and share, so a Mac keeps recognising its backup disk;
- ``_device-info._tcp`` (port 0) with TXT ``model=<model>`` (the icon Finder shows).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

ADISK_SYS = "waMa=0,adVF=0x100"
ADISK_FLAGS = "0x82"


@dataclass(frozen=True)
class Service:
    type: str  #: e.g. "_adisk._tcp"
    port: int
    txt: tuple[tuple[str, str], ...] = ()


def share_uuid(host: str, share: str) -> str:
    """The same uuid for the same host and share, on every run and machine."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nasd-timemachine://{host.lower()}/{share.lower()}"))


def services(host: str, smb_port: int, shares: list[str], model: str) -> dict[str, Service]:
    """The records for the Time Machine shares ``shares`` (none: nothing is published)."""
    if not shares:
        return {}
    disks = tuple((f"dk{i}", disk_entry(host, name)) for i, name in enumerate(sorted(shares, key=str.lower)))
    return {
        "_smb._tcp": Service("_smb._tcp", smb_port),
        "_adisk._tcp": Service("_adisk._tcp", 9, (("sys", ADISK_SYS), *disks)),
        "_device-info._tcp": Service("_device-info._tcp", 0, (("model", model),)),
    }


def disk_entry(host: str, share: str) -> str:
    """The ``dkN`` TXT value of one Time Machine share."""
    return f"adVN={share},adVF={ADISK_FLAGS},adVU={share_uuid(host, share)}"


def verdicts(host: str, shares: list[str], records: dict[str, Service],
             seen: dict[str, dict[str, str]]) -> dict[str, tuple[bool, str]]:
    """Per share, whether browsing (``seen``: type -> TXT) found everything published for it, and what to say."""
    disks = set(seen.get("_adisk._tcp", {}).values())
    missing = sorted(set(records) - set(seen))
    out = {}
    for name in shares:
        entry = disk_entry(host, name)
        if entry in disks and not missing:
            out[name] = (True, f"{host}._adisk._tcp: {entry}")
        else:
            out[name] = (False, f"published as {host} but not seen when browsing: missing "
                                f"{missing or ['dk entry ' + entry]} (is multicast delivered on this host's "
                                "interfaces? `timemachine: {interfaces: [...]}` picks them)")
    return out


def avahi_service_file(host: str, records: dict[str, Service]) -> str:
    """An avahi service group (``/etc/avahi/services/*.service``) for ``records``."""
    lines = ['<?xml version="1.0" standalone="no"?>', '<!DOCTYPE service-group SYSTEM "avahi-service.dtd">',
             "<service-group>", f"  <name>{escape(host)}</name>"]
    for service in records.values():
        lines.append("  <service>")
        lines.append(f"    <type>{escape(service.type)}</type>")
        lines.append(f"    <port>{service.port}</port>")
        for key, value in service.txt:
            lines.append(f"    <txt-record>{escape(key)}={escape(value)}</txt-record>")
        lines.append("  </service>")
    lines.append("</service-group>")
    return "\n".join(lines) + "\n"


class Backend(Protocol):
    async def publish(self, host: str, records: dict[str, Service]) -> None: ...
    async def close(self) -> None: ...


class AvahiBackend:
    """Writes one service file into avahi's folder (avahi-daemon reloads it); removes it when nothing is left."""

    def __init__(self, folder: Path):
        self.path = folder / "nasd-timemachine.service"

    async def publish(self, host: str, records: dict[str, Service]) -> None:
        if not records:
            self.path.unlink(missing_ok=True)
            return
        text = avahi_service_file(host, records)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".nasd-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)  # avahi reads whole files only; a new inode also bumps what it watches

    async def close(self) -> None:
        self.path.unlink(missing_ok=True)


class ZeroconfBackend:
    """Publishes from nasd itself (python-zeroconf), on ``interfaces`` (IPv4 addresses; empty: all)."""

    def __init__(self, interfaces: list[str]):
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        self.zc = AsyncZeroconf(interfaces=interfaces or None, ip_version=IPVersion.V4Only) if interfaces \
            else AsyncZeroconf(ip_version=IPVersion.V4Only)
        self.interfaces = interfaces
        self.registered: dict[str, object] = {}

    def _info(self, host: str, service: Service) -> object:
        from zeroconf import ServiceInfo

        addresses = [socket.inet_aton(a) for a in (self.interfaces or host_addresses())]
        return ServiceInfo(f"{service.type}.local.", f"{host}.{service.type}.local.", port=service.port,
                           properties=dict(service.txt), server=f"{host}.local.", addresses=addresses)

    async def publish(self, host: str, records: dict[str, Service]) -> None:
        for kind in [k for k in self.registered if k not in records]:
            await self.zc.async_unregister_service(self.registered.pop(kind))
        for kind, service in records.items():
            info = self._info(host, service)
            if kind in self.registered:
                await self.zc.async_update_service(info)
            else:
                await self.zc.async_register_service(info)
            self.registered[kind] = info

    async def close(self) -> None:
        try:
            for info in self.registered.values():
                await self.zc.async_unregister_service(info)
        finally:
            self.registered.clear()
            await self.zc.async_close()


def host_addresses() -> list[str]:
    """This host's IPv4 addresses but loopback: what the host name's A records say (Macs connect to it)."""
    import ifaddr  # (comes with python-zeroconf)

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(ip.ip)
    return sorted(set(out)) or ["127.0.0.1"]


async def browse(host: str, types: list[str], interfaces: list[str], timeout: float = 3.0) -> dict[str, dict[str, str]]:
    """What the network says about ``host``'s records of ``types``: {type: TXT} for those found."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    zc = AsyncZeroconf(interfaces=interfaces or None, ip_version=IPVersion.V4Only) if interfaces \
        else AsyncZeroconf(ip_version=IPVersion.V4Only)
    found: dict[str, dict[str, str]] = {}
    try:
        async def one(kind: str) -> None:
            info = AsyncServiceInfo(f"{kind}.local.", f"{host}.{kind}.local.")
            if await info.async_request(zc.zeroconf, int(timeout * 1000)):
                found[kind] = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}

        await asyncio.gather(*(one(k) for k in types))
    finally:
        await zc.async_close()
    return found
