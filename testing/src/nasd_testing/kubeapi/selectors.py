"""``labelSelector`` and ``fieldSelector`` query parameters.

Label selectors (``k8s.io/apimachinery/pkg/labels``): requirements joined by
commas (AND): ``a=b``, ``a==b``, ``a!=b``, ``a`` (exists), ``!a`` (does not
exist), ``a in (x,y)``, ``a notin (x,y)``, ``a>1``, ``a<1``. ``!=`` and
``notin`` also match objects without the label, as on the real server.

Field selectors (``k8s.io/apimachinery/pkg/fields``): ``=``, ``==`` and ``!=``
on ``metadata.name``, ``metadata.namespace`` and the per-kind fields a
resource registers (for Events ``involvedObject.name`` and friends, for Pods
``spec.nodeName``...). Any other field is a 400 ``field label not supported``,
like the real server. A missing field compares as the empty string.

Simpler than the real server: no validation of label keys/values syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .status import bad_request

Requirement = Callable[[dict[str, str]], bool]


@dataclass
class LabelSelector:
    requirements: list[Requirement]

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = ((obj.get("metadata") or {}).get("labels")) or {}
        return all(req(labels) for req in self.requirements)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


_SET = re.compile(r"^([^\s!=<>(),]+)\s+(in|notin)\s+\((.*)\)$")
_OP = re.compile(r"^([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``labelSelector``; 400 on syntax errors."""
    reqs: list[Requirement] = []
    for part in _split_top_level(text or ""):
        if part.startswith("!"):
            key = part[1:].strip()
            reqs.append(lambda labels, k=key: k not in labels)
            continue
        match = _SET.match(part)
        if match:
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if op == "in":
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        match = _OP.match(part)
        if match:
            key, op, value = match.groups()
            if op in ("=", "=="):
                reqs.append(lambda labels, k=key, v=value: labels.get(k) == v)
            elif op == "!=":
                reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                try:
                    bound = int(value)
                except ValueError:
                    raise bad_request(f"unable to parse requirement: invalid integer value {value!r}") from None
                if op == ">":
                    reqs.append(lambda labels, k=key, b=bound: k in labels and labels[k].isdigit() and int(labels[k]) > b)
                else:
                    reqs.append(lambda labels, k=key, b=bound: k in labels and labels[k].isdigit() and int(labels[k]) < b)
            continue
        if re.match(r"^[^\s!=<>(),]+$", part):
            reqs.append(lambda labels, k=part: k in labels)
            continue
        raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier")
    return LabelSelector(reqs)


def _lookup(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, dict) and path == "source":
        return str(node.get("component", ""))
    return str(node)


@dataclass
class FieldSelector:
    terms: list[tuple[str, bool, str]]  # (field, equal?, value)

    def matches(self, obj: dict[str, Any]) -> bool:
        return all((_lookup(obj, f) == v) == eq for f, eq, v in self.terms)


def parse_field_selector(text: str | None, allowed: tuple[str, ...] = ()) -> FieldSelector:
    """Parse ``fieldSelector``; 400 for syntax errors or fields the kind does not support."""
    terms: list[tuple[str, bool, str]] = []
    for part in _split_top_level(text or ""):
        match = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field_name, op, value = match.group(1).strip(), match.group(2), match.group(3).strip()
        if field_name not in ("metadata.name", "metadata.namespace") and field_name not in allowed:
            raise bad_request(f'field label not supported: {field_name}')
        terms.append((field_name, op != "!=", value))
    return FieldSelector(terms)
