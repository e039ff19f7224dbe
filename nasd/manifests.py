"""Reading manifests: several YAML documents per file, several files per folder."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from .models import ManifestError, Resource, parse_resource

# libyaml's safe loader when PyYAML was built with it (about 10x faster on big folders), else Python's
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


def parse_documents(text: str, where: str) -> list[Resource]:
    """All resources in one file; raise ManifestError listing every problem (the file is all or nothing)."""
    try:
        try:
            docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
        except yaml.YAMLError:  # Python's parser says more precisely where and what
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestError(where, [f"{where}: not valid YAML{at}: {getattr(e, 'problem', e)}"]) from None
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
        raise ManifestError(where, problems)
    return resources


def load_paths(paths: Iterable[Path]) -> list[Resource]:
    """Load every manifest below ``paths``; raise ManifestError with every problem of every file."""
    resources: list[Resource] = []
    problems: list[str] = []
    for f in manifest_files(paths):
        try:
            resources += parse_documents(f.read_text(), str(f))
        except ManifestError as e:
            problems += e.problems
    keys: dict[tuple[str, str], int] = {}
    for r in resources:
        keys[r.key] = keys.get(r.key, 0) + 1
    problems += [f"{k}/{n} is declared in more than one file" for (k, n), c in keys.items() if c > 1]
    if problems:
        raise ManifestError("manifests", problems)
    return resources
