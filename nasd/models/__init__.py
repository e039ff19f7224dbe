"""Every resource kind, and the helpers to load them from manifests with errors people can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .base import GROUP_VERSION, Condition, Metadata, Resource, Status
from .identity import NASDirectory, NASGroup, NASUser
from .shares import NASShare
from .snapshots import ZSnapshotRestore, ZSnapshotSchedule
from .zfs import ZDataset, ZPool

KINDS: dict[str, type[Resource]] = {
    cls.__name__: cls
    for cls in (ZPool, ZDataset, NASDirectory, NASGroup, NASUser, NASShare, ZSnapshotSchedule, ZSnapshotRestore)
}
PLURALS: dict[str, type[Resource]] = {cls.plural: cls for cls in KINDS.values()}


class ManifestError(ValueError):
    """A manifest that cannot be used; ``problems`` lists one line per field, each naming the fix."""

    def __init__(self, where: str, problems: list[str]):
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(problems))


def kind_for(name: str) -> type[Resource]:
    """Find a kind by its name, plural or short name, case-insensitively (like kubectl)."""
    lowered = name.lower()
    for cls in KINDS.values():
        names = {cls.__name__.lower(), cls.plural, cls.plural.rstrip("s"), *cls.short_names}
        if cls.plural.endswith("ies"):
            names.add(cls.plural[:-3] + "y")
        if lowered in names:
            return cls
    raise KeyError(f"unknown kind {name!r}; known kinds: {', '.join(KINDS)}")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        # Drop pydantic's internal tags (the model name of a union branch, function names).
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p)))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against the documented fields"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "literal_error":
            msg = f"{e.get('input')!r} is not allowed; {msg[0].lower()}{msg[1:]}"
        lines.append(f"{_loc(loc)}: {msg}" if loc else msg)
    return lines


def parse_resource(data: Any, where: str = "manifest") -> Resource:
    """Validate one manifest document into its resource model or raise ManifestError."""
    if not isinstance(data, dict):
        raise ManifestError(where, ["a manifest must be a mapping with apiVersion, kind, metadata and spec"])
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if api_version != GROUP_VERSION:
        raise ManifestError(where, [f"apiVersion: {api_version!r} is not supported; use {GROUP_VERSION}"])
    if not isinstance(kind, str) or kind not in KINDS:
        raise ManifestError(where, [f"kind: {kind!r} is not a nasd kind; use one of {', '.join(KINDS)}"])
    name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
    label = f"{where} ({kind}/{name})" if name else f"{where} ({kind})"
    try:
        return KINDS[kind].model_validate(data)
    except ValidationError as e:
        raise ManifestError(label, format_validation_error(e)) from None


__all__ = [
    "KINDS",
    "PLURALS",
    "Condition",
    "ManifestError",
    "Metadata",
    "NASDirectory",
    "NASGroup",
    "NASShare",
    "NASUser",
    "Resource",
    "Status",
    "ZDataset",
    "ZPool",
    "ZSnapshotRestore",
    "ZSnapshotSchedule",
    "format_validation_error",
    "kind_for",
    "parse_resource",
]
