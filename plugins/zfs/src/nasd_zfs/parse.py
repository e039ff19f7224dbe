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


def zfs_rows(text: str, columns: int, known: set[str] | None = None) -> tuple[list[list[str]], dict[str, str]]:
    """Rows of what `zfs get -H` or `zfs list -H` printed: lines split on ``\n`` only and fields on ``\t``,
    exactly as zfs prints them (never ``str.splitlines()``, which also breaks on ``\v``, ``\f``, U+2028, …).

    A value may hold a tab (zfs takes any user property value): in a ``zfs get`` row (``columns`` 4, the value
    third) the fields between the property and the source are joined back. A value may hold a newline too,
    and then the text after it reads as rows of its own, which could say anything about any dataset. So a
    dataset whose rows cannot be trusted is returned with the reason instead: the one whose row a newline cut
    short (the row before a malformed line), one named by a malformed line, and one named twice for the same
    column (a forged row beside the real one). With ``known`` (the names a listing of names only printed, which
    no value can forge), a row naming anything else is forged too: it is left out and the dataset before it,
    whose value holds the newline, is untrusted. Its rows are left out."""
    rows: list[list[str]] = []
    untrusted: dict[str, str] = {}
    seen: set[tuple[str, ...]] = set()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    previous: str | None = None
    for line in lines:
        parts = line.split("\t")
        if columns == 4 and len(parts) > 4:
            parts = [parts[0], parts[1], "\t".join(parts[2:-1]), parts[-1]]
        if len(parts) != columns:
            why = "a property value holds a newline (zfs printed a line that is not a row)"
            if previous is not None:
                untrusted.setdefault(previous, why)
            if parts[0]:
                untrusted.setdefault(parts[0], why)
            previous = None
            continue
        if known is not None and parts[0].split("@", 1)[0] not in known:
            why = "a property value holds a newline and a forged row (zfs printed a name it does not have)"
            if previous is not None:
                untrusted.setdefault(previous, why)
            untrusted.setdefault(parts[0], why)
            previous = None
            continue
        key = (parts[0], parts[1]) if columns == 4 else (parts[0],)
        if key in seen:
            untrusted.setdefault(parts[0], "zfs printed its row twice: a property value holds a forged row")
        seen.add(key)
        rows.append(parts)
        previous = parts[0]
    return [r for r in rows if r[0] not in untrusted], untrusted


def parse_zfs_get(text: str, untrusted: dict[str, str] | None = None,
                  known: set[str] | None = None) -> tuple[dict[str, Props], dict[str, int]]:
    """`zfs get -H -p -o name,property,value,source ...` -> ({dataset: props}, {dataset: snapshot count}).

    Snapshots (``ds@snap``) are counted, not returned: zfs-fuse cannot leave them out. Datasets whose rows
    cannot be trusted (see :func:`zfs_rows`) are left out and, when ``untrusted`` is given, added to it with
    the reason.
    """
    datasets: dict[str, Props] = {}
    snapshots: dict[str, int] = {}
    seen_snapshots: set[str] = set()
    rows, bad = zfs_rows(text, 4, known)
    if untrusted is not None:
        untrusted.update(bad)
    for name, prop, value, source in rows:
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
    for raw in text.split("\n"):
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
