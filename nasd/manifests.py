"""Reading manifests: several YAML documents per file, several files per folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from .limits import MAX_BYTES, clip_problems
from .models import ManifestError, Resource, parse_resource
from .safe_yaml import InputRefused, check_size, load_yaml_documents

SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.exists():
            files.append(path)
        else:
            raise ManifestError(str(path), [f"{path}: no such file or folder"])
    return files


def read_manifest(path: Path) -> str:
    """The text of one manifest file, read no further than the size limit; ManifestError when it
    is larger, not UTF-8 or cannot be read."""
    where = str(path)
    try:
        # O_NONBLOCK: a FIFO put in the folder must not hold up the daemon's open; a regular file only
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ManifestError(where, [f"{where}: not a regular file (a manifest is a file of YAML)"])
            data = f.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:  # (read, not stat: a growing file may say less)
                check_size(max(len(data), os.fstat(f.fileno()).st_size), where)
        return data.decode("utf-8")
    except InputRefused as e:
        raise ManifestError(where, [str(e)]) from None
    except UnicodeDecodeError as e:
        raise ManifestError(where, [f"{where}: not UTF-8 text (byte {e.start})"]) from None
    except OSError as e:
        raise ManifestError(where, [f"{where}: cannot be read: {e.strerror or e}"]) from None


def parse_documents(text: str, where: str) -> list[Resource]:
    """All resources in one file; raise ManifestError listing every problem (the file is all or nothing)."""
    try:
        docs = load_yaml_documents(text, where)
    except InputRefused as e:
        raise ManifestError(where, [str(e)]) from None
    resources: list[Resource] = []
    problems: list[str] = []
    for i, doc in enumerate(docs):
        label = where if len(docs) == 1 else f"{where} document {i + 1}"
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            items = doc["items"]
        else:
            items = [doc]
        for item in items:
            try:
                resources.append(parse_resource(item, label))
            except ManifestError as e:
                problems += [f"{e.where}: {p}" for p in e.problems]
    seen: dict[tuple[str, str], int] = {}
    for r in resources:
        seen[r.key] = seen.get(r.key, 0) + 1
    problems += [f"{where}: {k}/{n} is declared {c} times" for (k, n), c in seen.items() if c > 1]
    if problems:
        raise ManifestError(where, clip_problems(problems))
    return resources


def load_paths(paths: Iterable[Path]) -> list[Resource]:
    """Load every manifest below ``paths``; raise ManifestError with every problem of every file."""
    resources: list[Resource] = []
    problems: list[str] = []
    for f in manifest_files(paths):
        try:
            resources += parse_documents(read_manifest(f), str(f))
        except ManifestError as e:
            problems += e.problems
    keys: dict[tuple[str, str], int] = {}
    for r in resources:
        keys[r.key] = keys.get(r.key, 0) + 1
    problems += [f"{k}/{n} is declared in more than one file" for (k, n), c in keys.items() if c > 1]
    if problems:
        raise ManifestError("manifests", clip_problems(problems))
    return resources
