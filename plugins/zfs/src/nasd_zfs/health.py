"""What `zpool status` says about a pool's health, in both dialects: zfs-fuse 0.7 (pool version 23: one
``scrub:`` line) and OpenZFS 0.8-2.x (``scan:`` with continuation lines). Pure functions over text.

Parsed: the pool's state, the ``status:``/``action:`` paragraphs, the scan (scrub or resilver: running with
percent done and time left, or finished with when, how long, errors and bytes repaired), every line of the
device table (state, READ/WRITE/CKSUM, and the note after them), and the ``errors:`` section (permanent data
errors, and with ``-v`` the files). Unknown lines are skipped: odd text never raises.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

#: what a device or pool line can say in its STATE column (zpool_state_to_name, spares' AVAIL/INUSE)
STATES = ("ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL", "REMOVED", "SPLIT", "AVAIL", "INUSE", "UNKNOWN")
SECTIONS = ("logs", "cache", "spares", "special", "dedup")
_GROUP = re.compile(r"^(mirror|raidz[123]?|draid\d?\S*|replacing|spare|root|indirect)(-\d+)?$")
_DEVICE = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<state>" + "|".join(STATES) + r")"
    r"(?:\s+(?P<read>[\d.]+[KMGTPE]?)\s+(?P<write>[\d.]+[KMGTPE]?)\s+(?P<cksum>[\d.]+[KMGTPE]?))?"
    r"(?:\s+(?P<note>.*))?$"
)
_KEY = re.compile(r"^\s{0,8}(pool|state|status|action|see|scrub|scan|remove|checkpoint|config|errors|id|"
                  r"comment|dedup): ?(.*)$")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


@dataclass
class DeviceHealth:
    """One line of the device table."""

    name: str
    state: str
    read: int = 0
    write: int = 0
    cksum: int = 0
    note: str = ""
    depth: int = 0
    parent: str | None = None
    section: str | None = None

    @property
    def leaf(self) -> bool:
        """A device (a disk, a file), not the pool's own line nor a group such as mirror-0 or replacing-1."""
        return self.depth > 0 and not _GROUP.match(self.name)

    @property
    def errors(self) -> int:
        return self.read + self.write + self.cksum

    @property
    def repaired(self) -> int | None:
        """Bytes of a ``<size> repaired`` note (where zfs-fuse shows what a scrub repaired on this device)."""
        m = re.search(r"([\d.]+[KMGTPE]?B?)\s+repaired", self.note)
        return parse_size(m.group(1)) if m else None

    @property
    def resilvered(self) -> int | None:
        m = re.search(r"([\d.]+[KMGTPE]?B?)\s+resilvered", self.note)
        return parse_size(m.group(1)) if m else None

    @property
    def resilvering(self) -> bool:
        """A resilver onto this device is under way (``(resilvering)``; OpenZFS: also ``(awaiting resilver)``)."""
        return "resilvering" in self.note or "awaiting resilver" in self.note


@dataclass
class ScanInfo:
    """The last scrub or resilver, as the scan line says."""

    kind: str | None = None  # "scrub" | "resilver" | None (never scanned)
    state: str = "none"  # "none" | "running" | "paused" | "finished" | "canceled"
    percent: float | None = None
    seconds_left: int | None = None
    started: float | None = None
    ended: float | None = None
    duration: int | None = None
    errors: int | None = None
    repaired: int | None = None
    line: str = ""

    @property
    def running(self) -> bool:
        """A scan is in progress (a paused scrub too: it goes on where it stopped)."""
        return self.state in ("running", "paused")


@dataclass
class PoolHealth:
    name: str
    state: str = "UNKNOWN"
    status: str = ""
    action: str = ""
    scan: ScanInfo = field(default_factory=ScanInfo)
    devices: list[DeviceHealth] = field(default_factory=list)
    data_errors: int = 0
    error_files: list[str] = field(default_factory=list)
    errors_line: str = ""
    #: OpenZFS's `remove:` field while a top-level vdev's data is being copied away ("" when none is)
    removing: str = ""

    def device(self, path: str) -> DeviceHealth | None:
        want = os.path.normpath(path)
        return next((d for d in self.devices if d.leaf and os.path.normpath(d.name) == want), None)

    def leaves(self, section: str | None = None) -> list[DeviceHealth]:
        return [d for d in self.devices if d.leaf and d.section == section]


def parse_size(text: str) -> int | None:
    """``25.7M`` / ``72K`` / ``0B`` / ``1.23G`` (powers of 1024, as zfs_nicenum prints) -> bytes (approximate)."""
    m = re.fullmatch(r"([\d.]+)\s*([KMGTPE]?)i?B?", text.strip())
    if not m:
        return None
    try:
        return int(float(m.group(1)) * _UNITS[m.group(2)])
    except ValueError:
        return None


def parse_duration(text: str) -> int | None:
    """``0h0m`` (zfs-fuse, OpenZFS 0.7), ``00:00:01``, ``1 days 02:03:04`` (OpenZFS 0.8+) -> seconds."""
    text = text.strip()
    m = re.fullmatch(r"(\d+)h(\d+)m", text)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60
    m = re.fullmatch(r"(?:(\d+) days? )?(\d+):(\d\d):(\d\d)", text)
    if m:
        return int(m.group(1) or 0) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
    return None


def parse_ctime(text: str) -> float | None:
    """``Wed Dec  2 17:19:07 2026`` (C's ctime: local time) -> epoch seconds."""
    try:
        return time.mktime(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y"))
    except (ValueError, OverflowError):
        return None


_CTIME = r"(\w{3}\s+\w{3}\s+\d+\s+\d+:\d\d:\d\d\s+\d{4})"
_DURATION = r"(\d+h\d+m|(?:\d+ days? )?\d+:\d\d:\d\d)"


def parse_scan(text: str, now: float | None = None) -> ScanInfo:
    """The scan text (continuation lines joined with spaces) of either dialect -> ScanInfo."""
    line = " ".join(text.split())
    scan = ScanInfo(line=line)
    if not line or line.startswith("none requested"):
        return scan
    now = time.time() if now is None else now
    # zfs-fuse / Solaris: "scrub in progress for 0h0m, 5.07% done, 0h0m to go"
    m = re.match(r"^(scrub|resilver) in progress for " + _DURATION + r", ([\d.]+)% done, " + _DURATION + " to go", line)
    if m:
        elapsed = parse_duration(m.group(2))
        return ScanInfo(kind=m.group(1), state="running", percent=float(m.group(3)),
                        seconds_left=parse_duration(m.group(4)),
                        started=now - elapsed if elapsed is not None else None, line=line)
    # zfs-fuse / Solaris: "scrub completed after 0h0m with 0 errors on <ctime>" ("stopped": cancelled)
    m = re.match(r"^(scrub|resilver) (completed|stopped) after " + _DURATION + r" with (\d+) errors on " + _CTIME, line)
    if m:
        ended, took = parse_ctime(m.group(5)), parse_duration(m.group(3))
        return ScanInfo(kind=m.group(1), state="finished" if m.group(2) == "completed" else "canceled",
                        ended=ended, duration=took, errors=int(m.group(4)),
                        started=ended - took if ended is not None and took is not None else None, line=line)
    # OpenZFS: "scrub repaired 0B in 00:00:01 with 0 errors on <ctime>", "resilvered 72K in ... with 0 errors
    # on <ctime>", "resilvered (mirror-0) 1G in ..." (a sequential rebuild)
    m = re.match(r"^(scrub repaired|resilvered)(?: \([^)]*\))? (\S+) in " + _DURATION + r" with (\d+) errors on "
                 + _CTIME, line)
    if m:
        ended, took = parse_ctime(m.group(5)), parse_duration(m.group(3))
        return ScanInfo(kind="scrub" if m.group(1) == "scrub repaired" else "resilver", state="finished",
                        ended=ended, duration=took, errors=int(m.group(4)), repaired=parse_size(m.group(2)),
                        started=ended - took if ended is not None and took is not None else None, line=line)
    m = re.match(r"^(scrub|resilver)(?: \([^)]*\))? canceled on " + _CTIME, line)
    if m:
        return ScanInfo(kind=m.group(1), state="canceled", ended=parse_ctime(m.group(2)), line=line)
    # OpenZFS in progress: "scrub in progress since <ctime> ... 0B repaired, 5.00% done, 00:03:10 to go"
    # ("no estimated completion time"); "scrub paused since <ctime> scrub started on <ctime> ..."
    m = re.match(r"^(scrub|resilver)(?: \([^)]*\))? (in progress|paused) since " + _CTIME, line)
    if m:
        scan = ScanInfo(kind=m.group(1), state="running" if m.group(2) == "in progress" else "paused", line=line)
        started = re.search(r"started on " + _CTIME, line) if scan.state == "paused" else m
        scan.started = parse_ctime(started.group(started.lastindex or 1)) if started else None
        done = re.search(r"(\S+) (?:repaired|resilvered), ([\d.]+)% done", line)
        if done:
            scan.repaired, scan.percent = parse_size(done.group(1)), float(done.group(2))
        left = re.search(_DURATION + " to go", line)
        scan.seconds_left = parse_duration(left.group(1)) if left else None
        return scan
    return ScanInfo(line=line)  # (a scan line of a kind not known here: shown, not interpreted)


def _count(text: str | None) -> int:
    if not text:
        return 0
    return parse_size(text) or 0


def parse_pool_health(text: str, now: float | None = None) -> dict[str, PoolHealth]:
    """`zpool status [-P] [-v]` of one or many pools, either dialect -> {pool: PoolHealth}."""
    pools: dict[str, PoolHealth] = {}
    current: PoolHealth | None = None
    key: str | None = None
    fields: dict[str, list[str]] = {}
    base: int | None = None
    section: str | None = None
    stack: list[tuple[int, str]] = []  # (depth, name) of the lines above the one being read

    def finish() -> None:
        if current is None:
            return
        current.status = " ".join(" ".join(fields.get("status", [])).split())
        current.action = " ".join(" ".join(fields.get("action", [])).split())
        removal = " ".join(" ".join(fields.get("remove", [])).split())
        current.removing = removal if "in progress" in removal else ""
        current.scan = parse_scan("\n".join(fields.get("scan", fields.get("scrub", []))), now)
        if current.scan.kind is not None and current.scan.repaired is None and current.scan.state != "canceled":
            # zfs-fuse says what a scan repaired or resilvered only beside each device
            amounts = [(d.repaired if current.scan.kind == "scrub" else d.resilvered) for d in current.devices]
            if any(a is not None for a in amounts):
                current.scan.repaired = sum(a or 0 for a in amounts)
            elif current.scan.state == "finished":
                current.scan.repaired = 0
        errors = " ".join(" ".join(fields.get("errors", [])[:1]).split())
        current.errors_line = errors
        m = re.match(r"^(\d+) data errors?", errors)
        if m:
            current.data_errors = int(m.group(1))
        elif current.error_files:
            current.data_errors = len(current.error_files)

    for raw in text.split("\n"):
        line = raw.rstrip()
        m = _KEY.match(line) if not (key == "config" and line.startswith("\t")) else None
        if m and not (key == "errors" and line.startswith(" " * 8)):
            key = m.group(1)
            if key == "pool":
                finish()
                current = PoolHealth(name=m.group(2).strip())
                pools[current.name] = current
                fields, base, section, stack = {}, None, None, []
                continue
            if current is None:
                continue
            if key == "state":
                current.state = m.group(2).strip() or current.state
            fields.setdefault(key, []).append(m.group(2))
            continue
        if current is None or not line.strip():
            continue
        if key == "config":
            body = line[1:] if line.startswith("\t") else line
            indent = len(body) - len(body.lstrip(" "))
            name_state = body.strip()
            if re.match(r"^NAME\s+STATE\b", name_state):
                continue
            if base is None:
                base = indent
            depth = max(0, (indent - base) // 2)
            if depth == 0 and name_state in SECTIONS:
                section, stack = name_state, [(0, name_state)]
                continue
            d = _DEVICE.match(name_state)
            if d is None:
                continue
            while stack and stack[-1][0] >= depth:
                stack.pop()
            if depth == 0:
                section = None
            dev = DeviceHealth(name=d.group("name"), state=d.group("state"), read=_count(d.group("read")),
                               write=_count(d.group("write")), cksum=_count(d.group("cksum")),
                               note=(d.group("note") or "").strip(), depth=depth,
                               parent=stack[-1][1] if stack else None, section=section)
            current.devices.append(dev)
            stack.append((depth, dev.name))
        elif key == "errors":
            if line.startswith(" " * 8) or line.startswith("\t"):
                current.error_files.append(line.strip())
        elif key is not None and (line.startswith("\t") or line.startswith(" " * 4)):
            if "scan warning" in line:
                continue
            fields.setdefault(key, []).append(line.strip())
    finish()
    return pools
