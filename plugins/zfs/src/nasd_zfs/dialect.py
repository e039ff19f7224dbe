"""Which ZFS the binaries speak: OpenZFS 2.x or the older zfs-fuse (pool version 23).

Detected once from the usage texts the binaries print (no version command exists in
zfs-fuse), so we never guess from a version number and never try a command to see
whether it fails.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Dialect:
    name: str = "openzfs"
    #: `zfs list -p` (exact numbers in listings)
    list_parsable: bool = True
    #: `zfs get -t filesystem` (skip snapshots when reading properties)
    get_types: bool = True
    #: several datasets in one `zfs snapshot`
    multi_snapshot: bool = True
    #: `zfs destroy ds@a,b,c`
    comma_destroy: bool = True
    #: `zfs hold` / `zfs release`
    holds: bool = True
    #: `zfs holds -H` (a parsable listing of holds)
    holds_listing: bool = True
    #: several `prop=value` in one `zfs set`
    multi_set: bool = True
    #: `zfs program` (channel programs)
    program: bool = True
    #: `zfs list -j` (JSON output)
    json: bool = False
    #: `zpool status -P` (full device paths)
    status_full_paths: bool = True
    #: properties `zfs get` knows
    properties: frozenset[str] = field(default_factory=frozenset)
    #: compression values `zfs set compression=` accepts (empty: not known, do not check)
    compression: frozenset[str] = field(default_factory=frozenset)

    @property
    def concurrent_changes(self) -> int | None:
        """How many changing zfs/zpool commands may run at once (None: no bound of ZFS's own; the daemon's
        ``applyConcurrency`` rules). zfs-fuse: 1, as a four-way loop of `zfs create` hung its daemon in 2 of 5
        runs (the creates stuck in the FUSE layer); OpenZFS groups concurrent changes into shared transaction
        groups. Derived from the name, so a dialect cached by an older nasd gets it too."""
        return 1 if self.name == "zfs-fuse" else None

    def to_json(self) -> dict:
        data = asdict(self)
        data["properties"] = sorted(self.properties)
        data["compression"] = sorted(self.compression)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Dialect":
        data = dict(data)
        data["properties"] = frozenset(data.get("properties", ()))
        data["compression"] = frozenset(data.get("compression", ()))
        return cls(**data)


def _usage_line(usage: str, verb: str) -> str:
    """All usage lines of ``verb`` joined, with their continuation lines (a verb may have several forms)."""
    out: list[str] = []
    taking = False
    for ln in usage.splitlines():
        text = ln.strip()
        if re.match(rf"^{verb}\b", text):
            out.append(text)
            taking = True
        elif taking and text[:1] in ("[", "<", "-") and ln[:1].isspace():
            out[-1] += " " + text
        else:
            taking = False
    return "\n".join(out)


def _flags(line: str) -> set[str]:
    out: set[str] = set()
    for group in re.findall(r"\[-([A-Za-z]+)\]", line):
        out |= set(group)
    for group in re.findall(r"\[-([A-Za-z])[ |\]]", line):
        out.add(group)
    return out


def parse_properties(get_usage: str) -> tuple[frozenset[str], frozenset[str]]:
    """Property names (and compression values) from the table `zfs get` prints with its usage."""
    props: set[str] = set()
    compression: set[str] = set()
    in_table = False
    for line in get_usage.splitlines():
        if re.match(r"^\s*PROPERTY\s+EDIT\s+INHERIT\s+VALUES", line):
            in_table = True
            continue
        if in_table:
            if not line.strip():
                if props:
                    break
                continue
            m = re.match(r"^\s+([a-z0-9_]+)(?:@\.\.\.)?\s+(YES|NO)\s+(YES|NO)\s+(.*)$", line)
            if m and "@" not in line.split()[0]:
                props.add(m.group(1))
                if m.group(1) == "compression":
                    compression = {v.strip() for v in m.group(4).split("|")}
    # "gzip-[1-9]" and "zstd-[1-19]" stand for ranges
    expanded: set[str] = set()
    for v in compression:
        m = re.match(r"^(gzip|zstd|zstd-fast)-\[(\d+)-(\d+)\]$", v)
        if m:
            expanded |= {f"{m.group(1)}-{i}" for i in range(int(m.group(2)), int(m.group(3)) + 1)}
        elif re.match(r"^[a-z0-9-]+$", v):
            expanded.add(v)
    return frozenset(props), frozenset(expanded)


def parse_dialect(zfs_usage: str, zfs_get_usage: str, zpool_usage: str) -> Dialect:
    list_line = _usage_line(zfs_usage, "list")
    get_line = _usage_line(zfs_usage, "get") or _usage_line(zfs_get_usage, "get")
    snapshot_line = _usage_line(zfs_usage, "snapshot")
    destroy_line = _usage_line(zfs_usage, "destroy")
    set_line = _usage_line(zfs_usage, "set")
    holds_line = _usage_line(zfs_usage, "holds")
    status_line = _usage_line(zpool_usage, "status")
    props, compression = parse_properties(zfs_get_usage)
    multi_snapshot = bool(re.search(r"@<?snap(name)?>?\s*(\.\.\.|\[)", snapshot_line)) or "@<snap> ..." in snapshot_line
    dialect = Dialect(
        name="openzfs" if re.search(r"^\s*(program|version)\b", zfs_usage, re.M) else "zfs-fuse",
        list_parsable="p" in _flags(list_line),
        get_types="-t type" in get_line,
        multi_snapshot=multi_snapshot,
        comma_destroy="[,...]" in destroy_line,
        holds=bool(re.search(r"^\s*hold\b", zfs_usage, re.M)),
        holds_listing="H" in _flags(holds_line),
        multi_set=bool(re.search(r"<property=value>\s*\.\.\.", set_line)),
        program=bool(re.search(r"^\s*program\b", zfs_usage, re.M)),
        json="j" in _flags(list_line),
        status_full_paths="P" in _flags(status_line),
        properties=props,
        compression=compression,
    )
    return dialect
