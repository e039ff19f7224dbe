"""``meta.k8s.io/v1`` ``Table`` output, what ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``;
the server answers with ``kind: Table``: ``columnDefinitions`` and one row per
object with ``cells`` and ``object`` (a ``PartialObjectMetadata`` by default,
the full object with ``includeObject=Object``, nothing with ``None``).

For a custom resource the columns are ``Name`` plus the CRD version's
``additionalPrinterColumns`` (or ``Age`` when it declares none); each cell is
the first result of the column's JSONPath, ``null`` when there is none or it
has the wrong type (kubectl prints ``<none>``); ``date`` columns carry the age
as the server computes it (``duration.HumanDuration``: ``5s``, ``3m20s``,
``2d4h``), not the timestamp, as the real apiextensions table convertor does. Supported JSONPath: ``.a.b``, ``.a[0]``, ``.a[*]``,
``.a[?(@.k=="v")].b`` (also ``!=`` and ``'v'``), optionally in ``{...}``.

Simpler than the real server: built-ins get ``Name`` and ``Created At`` only
(the real server has a printer per kind, e.g. Pods' READY/STATUS/RESTARTS).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from .resources import ResourceType

NAME_COLUMN = {
    "name": "Name", "type": "string", "format": "name", "priority": 0,
    "description": "Name must be unique within a namespace. Is required when creating resources, although some "
                   "resources may allow a client to request the generation of an appropriate name automatically. "
                   "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
                   "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
}
CREATED_COLUMN = {
    "name": "Created At", "type": "date", "format": "", "priority": 0,
    "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}
AGE_COLUMN = {
    "name": "Age", "type": "date", "format": "", "priority": 0,
    "description": "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp",
}

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z0-9_\-/]+)|\[(?P<index>\d+|\*)\]|\[\?\(@\.(?P<fkey>[A-Za-z0-9_.\-]+)\s*(?P<fop>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+)\)\]"""
)


def jsonpath(obj: Any, expression: str) -> list[Any]:
    """Evaluate the small JSONPath subset above; returns every result."""
    expr = expression.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    current: list[Any] = [obj]
    pos = 0
    while pos < len(expr):
        match = _STEP.match(expr, pos)
        if not match:
            raise ValueError(f"unsupported JSONPath {expression!r} at {expr[pos:]!r}")
        pos = match.end()
        nxt: list[Any] = []
        if match.group("name") is not None:
            key = match.group("name")
            nxt = [node[key] for node in current if isinstance(node, dict) and key in node]
        elif match.group("index") is not None:
            index = match.group("index")
            for node in current:
                if isinstance(node, list):
                    if index == "*":
                        nxt.extend(node)
                    elif int(index) < len(node):
                        nxt.append(node[int(index)])
        else:
            fkey, fop, raw = match.group("fkey"), match.group("fop"), match.group("fval")
            wanted: Any = raw[1:-1] if raw[:1] in "\"'" else raw
            for node in current:
                items = node if isinstance(node, list) else [node]
                for item in items:
                    found = jsonpath(item, "." + fkey)
                    value = found[0] if found else None
                    equal = value is not None and str(value if not isinstance(value, bool) else str(value).lower()) == str(wanted)
                    if equal == (fop == "=="):
                        nxt.append(item)
        current = nxt
    return current


def columns_for(rtype: ResourceType) -> list[dict[str, Any]]:
    if not rtype.custom:
        return [NAME_COLUMN, CREATED_COLUMN]
    if not rtype.printer_columns:
        return [NAME_COLUMN, AGE_COLUMN]
    result = [NAME_COLUMN]
    for column in rtype.printer_columns:
        result.append({
            "name": column["name"], "type": column.get("type", "string"), "format": column.get("format", ""),
            "description": column.get("description", f"Custom resource definition column (in JSONPath format): "
                                                     f"{column['jsonPath']}"),
            "priority": column.get("priority", 0),
        })
    return result


def _units(count: int, unit: str, rest: int = 0, rest_unit: str = "") -> str:
    """``3m``, or ``3m20s`` with a non-zero remainder."""
    return f"{count}{unit}" + (f"{rest}{rest_unit}" if rest else "")


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes, hours, days = secs // 60, secs // 3600, secs // 86400
    if minutes < 10:
        return _units(minutes, "m", secs % 60, "s")
    if minutes < 180:
        return _units(minutes, "m")
    if hours < 8:
        return _units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return _units(hours, "h")
    if hours < 24 * 8:
        return _units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return _units(days, "d")
    if hours < 24 * 365 * 8:
        return _units(days // 365, "y", days % 365, "d")
    return _units(days // 365, "y")


def _age(timestamp: str) -> str:
    try:
        when = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(timezone.utc) - when).total_seconds())


def _cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    """One cell, as the apiextensions table convertor computes it (``cellForJSONValue``)."""
    results = jsonpath(obj, column["jsonPath"])
    if not results or results[0] is None:
        return None
    value = results[0]
    kind = column.get("type", "string")
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        return _age(value)
    return None


def _cells(rtype: ResourceType, obj: dict[str, Any]) -> list[Any]:
    meta = obj.get("metadata") or {}
    cells: list[Any] = [meta.get("name")]
    if not rtype.custom or not rtype.printer_columns:
        cells.append(meta.get("creationTimestamp"))
        return cells
    for column in rtype.printer_columns:
        cells.append(_cell(obj, column))
    return cells


def to_table(rtype: ResourceType, objects: list[dict[str, Any]], resource_version: str,
             include_object: str = "Metadata") -> dict[str, Any]:
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": _cells(rtype, obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns_for(rtype),
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for ``as=Table;g=meta.k8s.io;v=v1`` before any plain JSON."""
    for media in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
                  for p in media.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
        if not params and media.split(";")[0].strip() in ("application/json", "*/*"):
            return False
    return False
