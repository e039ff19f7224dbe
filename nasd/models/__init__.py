"""Every resource kind, and the helpers to load them from manifests with errors people can act on."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from .base import GROUP_VERSION, Condition, Metadata, Resource, Status, escape_unsafe
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
        else:  # a dict key the manifest gave: shown, never able to break the message's line
            out += ("." if out else "") + escape_unsafe(str(part)[:256])
    return out


#: how pydantic tags a union branch or a validator in a location (``function-after[_host(), str]``)
_TAG = re.compile(r"function-.*|[A-Za-z_][\w-]*\[.*\]")
#: the longest problem line: a message quoting a huge value is cut
_MAX_PROBLEM = 1024


def _shown(value: Any) -> str:
    """A value a manifest gave, short and on one line (repr escapes what could break it)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**64:
        return "a number of more than 64 digits"
    if not isinstance(value, (str, int, float, type(None))):
        return f"a {type(value).__name__}"  # never the repr of a structure (it may nest thousands deep)
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def format_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        # Drop pydantic's internal tags (the model name of a union branch, function names).
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and _TAG.fullmatch(p)))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against the documented fields"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "literal_error":
            msg = f"{_shown(e.get('input'))} is not allowed; {msg[0].lower()}{msg[1:]}"
        line = f"{_loc(loc)}: {msg}" if loc else msg
        lines.append(line if len(line) <= _MAX_PROBLEM else line[: _MAX_PROBLEM - 3] + "...")
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
    if isinstance(name, str) and name:
        label = f"{where} ({kind}/{escape_unsafe(name[:253])})"
    else:
        label = f"{where} ({kind})"
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
