"""What the host exports besides nasd: the paths of every other exports file, and the kernel's
export table as exportfs last wrote it (``etab``). Reads files only; runs nothing."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .render import unescape_path


@dataclass
class HostExports:
    #: path -> the files (and line numbers) outside nasd's that export it
    foreign: dict[str, list[str]] = field(default_factory=dict)
    #: the paths exportfs has put in effect (for some client)
    active: set[str] = field(default_factory=set)


def export_paths(text: str) -> list[tuple[int, str]]:
    """(line number, path) of each export in an exports(5) file: comments, blank lines and
    backslash-continued lines handled, quoted paths and octal escapes decoded."""
    out: list[tuple[int, str]] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not logical:
            start = number
        line = raw.split("#", 1)[0] if not raw.lstrip().startswith('"') else raw
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        stripped = logical.strip()
        logical = ""
        if not stripped or stripped.startswith("#"):
            continue
        try:
            first = shlex.split(stripped, posix=False)[0]
        except ValueError:
            first = stripped.split()[0]
        out.append((start, unescape_path(first)))
    return out


def read_host_exports(own: Path, system: Path, etab: Path) -> HostExports:
    result = HostExports()
    files = [system] + sorted(p for p in own.parent.glob("*.exports") if p != own)
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        for number, path in export_paths(text):
            result.foreign.setdefault(path.rstrip("/") or "/", []).append(f"{f}:{number}")
    try:
        for line in etab.read_text(errors="replace").splitlines():
            path, _, rest = line.partition("\t")
            if path and rest:
                result.active.add(unescape_path(path))
    except FileNotFoundError:
        pass
    return result
