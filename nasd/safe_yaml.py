"""The one way nasd reads YAML and JSON from users (manifest files, API bodies), within limits.

Before anything is built, the text's events are read once (libyaml's parser when PyYAML has it:
iterative, so nesting cannot exhaust the stack) and the document is refused when it is larger
than :data:`~nasd.limits.MAX_BYTES`, nests deeper than :data:`~nasd.limits.MAX_DEPTH` (through
aliases too), uses more than :data:`~nasd.limits.MAX_ALIASES` aliases, or when its aliases would
add more than :data:`~nasd.limits.MAX_ALIAS_NODES` nodes (a "billion laughs" of a few hundred
bytes). Only then is it loaded, by the safe loader. Every refusal is an :class:`InputRefused`
naming where, what and the limit; nothing else (no RecursionError, no MemoryError) escapes.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, SequenceStartEvent)

from .limits import MAX_ALIAS_NODES, MAX_ALIASES, MAX_BYTES, MAX_DEPTH, clip, size_text

# libyaml's safe loader when PyYAML was built with it (about 10x faster on big folders), else Python's
_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputRefused(ValueError):
    """Text nasd will not load: not valid YAML or JSON, or over a limit (``too_large``: the size limit)."""

    def __init__(self, where: str, problem: str, too_large: bool = False):
        self.where = where
        self.problem = problem
        self.too_large = too_large
        super().__init__(f"{where}: {problem}")


def check_size(size: int, where: str) -> None:
    if size > MAX_BYTES:
        raise InputRefused(where, f"is larger than the limit of {size_text(MAX_BYTES)}; split it into several "
                                  "files or requests", too_large=True)


def load_yaml_documents(text: str, where: str) -> list[Any]:
    """Every non-empty document of ``text``; raise InputRefused when it is invalid or over a limit."""
    check_size(len(text.encode("utf-8", "surrogatepass")), where)
    for loader in dict.fromkeys((_FAST, yaml.SafeLoader)):  # Python's parser says more precisely where and what
        try:
            _check_events(loader(text), where)
            return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
        except yaml.YAMLError as e:
            error = e
    raise InputRefused(where, f"not valid YAML{_at(getattr(error, 'problem_mark', None))}: "
                              f"{clip(str(getattr(error, 'problem', None) or error))}") from None


def load_yaml(text: str, where: str) -> Any:
    """The one document of ``text`` (None when empty); more than one is refused."""
    docs = load_yaml_documents(text, where)
    if len(docs) > 1:
        raise InputRefused(where, f"holds {len(docs)} YAML documents; send one")
    return docs[0] if docs else None


def load_json(text: str, where: str) -> Any:
    """``text`` as JSON; raise InputRefused when it is invalid, larger or deeper than the limits."""
    check_size(len(text.encode("utf-8", "surrogatepass")), where)
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(where, None) from None
    except ValueError as e:
        raise InputRefused(where, f"not valid JSON: {clip(str(e))}") from None
    if _depth(data) > MAX_DEPTH:
        raise _too_deep(where, None)
    return data


def _check_events(loader: Any, where: str) -> None:
    """Read the event stream once and refuse it when it nests too deep or its aliases expand too far."""
    # per open collection: [nodes counted before it, its anchor, the deepest nesting below it]
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (nodes it expands to, nesting levels)
    nodes = aliases = added = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                stack.append([nodes, event.anchor, 0])
                nodes += 1
                if len(stack) > MAX_DEPTH:
                    raise _too_deep(where, event.start_mark)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                start, anchor, below = stack.pop()
                if anchor is not None:
                    anchors[anchor] = (nodes - start, below + 1)
                if stack:
                    stack[-1][2] = max(stack[-1][2], below + 1)
            elif isinstance(event, ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
            elif isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise InputRefused(where, f"uses more than {MAX_ALIASES} YAML aliases (*name){_at(event.start_mark)}"
                                              "; write the values out instead")
                size, levels = anchors.get(event.anchor, (1, 0))  # an unknown one: the loader will say so
                nodes += size
                added += size
                if added > MAX_ALIAS_NODES:
                    raise InputRefused(where, f"its YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"
                                              f"{_at(event.start_mark)}; write the values out instead")
                if len(stack) + levels > MAX_DEPTH:
                    raise _too_deep(where, event.start_mark)
                if stack:
                    stack[-1][2] = max(stack[-1][2], levels)
            elif isinstance(event, DocumentStartEvent):
                anchors = {}  # an alias refers to an anchor of its own document
    finally:
        loader.dispose()


def _depth(data: Any) -> int:
    """How deep lists and dicts nest in ``data`` (iteratively: any depth is measured)."""
    deepest = 0
    todo = [(data, 1)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            todo += [(v, level + 1) for v in (value.values() if isinstance(value, dict) else value)]
    return deepest


def _too_deep(where: str, mark: Any) -> InputRefused:
    return InputRefused(where, f"nests mappings and lists more than {MAX_DEPTH} levels deep{_at(mark)}")


def _at(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
