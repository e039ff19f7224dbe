"""PATCH bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

The real apiserver accepts, per resource, these ``Content-Type``s for PATCH:

* ``application/merge-patch+json`` (RFC 7386): objects merge recursively,
  ``null`` deletes a key, anything else (lists too) replaces.
* ``application/json-patch+json`` (RFC 6902): a JSON *array* of operations
  (``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``). A body that
  is not an array does not decode (400 ``BadRequest``, e.g. kubernetes-asyncio
  sending a dict with its default content type); an operation that does not
  apply, such as a failing ``test``, is 422.
* ``application/strategic-merge-patch+json``: only for built-in kinds (it needs
  the Go struct tags); custom resources answer 415. The fake applies it to
  built-ins as a plain merge patch, i.e. lists are replaced instead of merged by
  their patch keys. Simpler than the real server.
* ``application/apply-patch+yaml`` (server-side apply): not implemented here
  (415), unlike the real server.
"""

from __future__ import annotations

import copy
from typing import Any

from .schema import _type_name
from .status import bad_request, unprocessable, unsupported_media_type

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch: returns the patched copy."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} does not start with '/'")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _walk(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ValueError(f"doc is missing path: \"{pointer}\": missing value")
    return node


def _parent(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, str]:
    return _walk(doc, tokens[:-1], pointer), tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    return _walk(doc, _split_pointer(pointer), pointer)


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ValueError(f"add operation does not apply: doc is missing path: \"{pointer}\"")
    else:
        raise ValueError(f"add operation does not apply: doc is missing path: \"{pointer}\"")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _split_pointer(pointer)
    if not tokens:
        raise ValueError("cannot remove the whole document")
    parent, last = _parent(doc, tokens, pointer)
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise ValueError(f"remove operation does not apply: doc is missing path: \"{pointer}\"")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: returns the patched copy; ``ApiError`` 400 if the patch does not decode, 422 if it does not apply."""
    if not isinstance(operations, list):
        raise bad_request(f"json: cannot unmarshal {_json_kind(operations)} into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise unprocessable("Unexpected kind: missing op or path")
        kind, path = op["op"], op["path"]
        try:
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc, _ = _remove(doc, path)
            elif kind == "replace":
                _get(doc, path)
                tokens = _split_pointer(path)
                if not tokens:
                    doc = copy.deepcopy(op.get("value"))
                else:
                    parent, last = _parent(doc, tokens, path)
                    if isinstance(parent, list):
                        parent[int(last)] = copy.deepcopy(op.get("value"))
                    else:
                        parent[last] = copy.deepcopy(op.get("value"))
            elif kind == "move":
                doc, value = _remove(doc, op["from"])
                doc = _add(doc, path, value)
            elif kind == "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
            elif kind == "test":
                try:
                    actual = _get(doc, path)
                except ValueError:
                    actual = None
                if actual != op.get("value") or type(actual) is not type(op.get("value")):
                    raise ValueError(f"testing value {path} failed: test failed")
            else:
                raise ValueError(f"Unexpected kind: {kind}")
        except (ValueError, KeyError, IndexError) as exc:
            raise unprocessable(str(exc).strip("'\"")) from None
    return doc


def _json_kind(value: Any) -> str:
    """How Go's ``encoding/json`` names a (non-array) JSON value in an unmarshal error."""
    t = _type_name(value)
    return {"boolean": "bool", "integer": "number"}.get(t, t)


def accepted_patch_types(custom: bool) -> list[str]:
    """The PATCH media types served: strategic merge patch only for built-ins, never apply patch here."""
    return [JSON_PATCH, MERGE] if custom else [JSON_PATCH, MERGE, STRATEGIC]


def apply_patch(content_type: str, target: dict[str, Any], body: Any, custom: bool) -> dict[str, Any]:
    """Apply a PATCH body of the given media type; 415 for the types this fake (or the real server) refuses."""
    if content_type == MERGE or (content_type == STRATEGIC and not custom):
        if not isinstance(body, dict):
            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
        return merge_patch(target, body)
    if content_type == JSON_PATCH:
        result = json_patch(target, body)
        if not isinstance(result, dict):
            raise bad_request("the patched document is not a JSON object")
        return result
    raise unsupported_media_type(accepted_patch_types(custom))
