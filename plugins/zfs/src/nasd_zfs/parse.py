"""Parsers for what zpool and zfs print, in both dialects. Pure functions over text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class VdevInfo:
    type: str  # disk | mirror | raidz1 | raidz2 | raidz3 | other
    devices: list[str]


@dataclass
class PoolInfo:
    name: str
    state: str
    vdevs: list[VdevInfo] = field(default_factory=list)
    #: log, cache and spare devices (not part of the data layout nasd compares)
    auxiliary: dict[str, list[str]] = field(default_factory=dict)


Props = dict[str, tuple[str, str]]  # property -> (value, source)

_GROUP = re.compile(r"^(mirror|raidz([123])?|draid\d?\S*|spare|replacing)(-\d+)?$")
_AUX_SECTIONS = {"logs", "cache", "spares", "special", "dedup"}


def parse_zfs_get(text: str) -> tuple[dict[str, Props], dict[str, int]]:
    """`zfs get -H -p -o name,property,value,source ...` -> ({dataset: props}, {dataset: snapshot count}).

    Snapshots (``ds@snap``) are counted, not returned: zfs-fuse cannot leave them out.
    """
    datasets: dict[str, Props] = {}
    snapshots: dict[str, int] = {}
    seen_snapshots: set[str] = set()
    for line in text.splitlines():
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise ValueError(f"unexpected zfs get line: {line!r}")
        name, prop, value, source = parts
        if "@" in name:
            if name not in seen_snapshots:
                seen_snapshots.add(name)
                base = name.split("@", 1)[0]
                snapshots[base] = snapshots.get(base, 0) + 1
            continue
        datasets.setdefault(name, {})[prop] = (value, source)
    return datasets, snapshots


def parse_zpool_status(text: str) -> dict[str, PoolInfo]:
    """`zpool status [-P]` for every pool -> {pool: PoolInfo} with the data vdev layout."""
    pools: dict[str, PoolInfo] = {}
    current: PoolInfo | None = None
    in_config = False
    section: str | None = None  # None (data vdevs) or an auxiliary section name
    group: VdevInfo | None = None
    base_indent: int | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = re.match(r"^\s*pool: (\S+)$", line)
        if m:
            current = PoolInfo(name=m.group(1), state="UNKNOWN")
            pools[current.name] = current
            in_config, section, group, base_indent = False, None, None, None
            continue
        if current is None:
            continue
        m = re.match(r"^\s*state: (\S+)", line)
        if m and not in_config:
            current.state = m.group(1)
            continue
        if re.match(r"^\s*config:\s*$", line):
            in_config = True
            continue
        if re.match(r"^\s*errors:", line):
            in_config = False
            continue
        if not in_config or not line.strip():
            continue
        body = line.lstrip("\t")
        indent = len(body) - len(body.lstrip(" "))
        tokens = body.split()
        if tokens[0] == "NAME" and len(tokens) > 1 and tokens[1] == "STATE":
            continue
        name = tokens[0]
        if base_indent is None:  # the pool's own line
            base_indent = indent
            continue
        level = (indent - base_indent) // 2
        if level == 0:
            section = name if name in _AUX_SECTIONS else None
            group = None  # "logs", "cache", "spares" headers sit at the pool's own level
            continue
        if section is not None:
            if level >= 1 and not _GROUP.match(name):
                current.auxiliary.setdefault(section, []).append(name)
            continue
        if level == 1:
            g = _GROUP.match(name)
            if g:
                kind = g.group(1)
                if kind.startswith("raidz"):
                    kind = f"raidz{g.group(2) or '1'}"
                elif kind not in ("mirror",):
                    kind = "other"
                group = VdevInfo(type=kind, devices=[])
                current.vdevs.append(group)
            else:
                group = None
                current.vdevs.append(VdevInfo(type="disk", devices=[name]))
        elif level >= 2 and group is not None and not _GROUP.match(name):
            group.devices.append(name)
    return pools


def parse_zpool_import(text: str) -> list[str]:
    """`zpool import -d DIR` (a listing of importable pools) -> their names."""
    return re.findall(r"^\s*pool: (\S+)\s*$", text, re.M)
