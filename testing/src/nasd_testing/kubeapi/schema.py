"""Structural-schema handling of custom objects: pruning, defaulting, validation.

What the real apiextensions-apiserver does with every incoming custom object
(create, update, the result of a patch, a status update), in this order:

1. *Pruning* (``structuralpruning``): fields the CRD's ``openAPIV3Schema`` does
   not specify are dropped, unless a ``x-kubernetes-preserve-unknown-fields:
   true`` covers them or an ``additionalProperties`` schema allows any key. An
   ``type: object`` without ``properties`` keeps nothing. With
   ``fieldValidation=Strict`` the same unknown fields make the request fail
   (``strict decoding error: unknown field "spec.foo"``), with ``Warn`` they
   are reported in ``Warning`` headers. ``apiVersion``, ``kind`` and
   ``metadata`` at the root are never pruned by the schema (``metadata`` is an
   ``ObjectMeta`` and is handled by the server).
2. Nulls of fields that are not ``nullable`` are dropped (and then defaulted if
   they have a ``default``).
3. *Defaulting* (``structuraldefaulting``): a missing property with a
   ``default`` gets (a copy of) it, top down, so defaults inside defaults and
   inside present objects and array items apply too.
4. *Validation* (kube-openapi's OpenAPI v3 validator): ``type``, ``enum``,
   ``required``, ``pattern``, ``minimum``/``maximum`` (and the exclusive
   forms), ``multipleOf``, ``minLength``/``maxLength``, ``minItems``/``maxItems``,
   ``uniqueItems``, ``minProperties``/``maxProperties``, ``nullable``,
   ``x-kubernetes-int-or-string`` and ``anyOf``/``allOf``/``oneOf``/``not``
   (value validations only), ``additionalProperties`` schemas. Errors name the
   field path (``spec.vdevs[0].devices``) with the apiserver's wording.

Simpler than the real server: no CEL rules (``x-kubernetes-validations``),
no ``format`` checks, no list-type/map-type (``x-kubernetes-list-type``)
uniqueness checks, no ratcheting of unchanged invalid values on update, and
the CRD's own schema is not checked for being structural.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from .status import FieldError

ROOT_KEYS = ("apiVersion", "kind", "metadata")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_PY_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int,
                             "number": (int, float)}


def _has_type(value: Any, wanted: str) -> bool:
    if wanted not in _PY_TYPES:
        return True
    return isinstance(value, _PY_TYPES[wanted]) and (wanted == "boolean" or not isinstance(value, bool))


# ---------------------------------------------------------------------------------------------- pruning

def prune(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """Drop unknown fields (and non-nullable nulls) in place; return the unknown fields' paths."""
    unknown: list[str] = []
    if schema is None:
        return unknown
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in ROOT_KEYS:
            continue
        if key in props:
            if obj[key] is None and not props[key].get("nullable"):
                del obj[key]
                continue
            _prune(obj[key], props[key], key, unknown)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            unknown.append(key)
            del obj[key]
    return unknown


def _prune(value: Any, schema: dict[str, Any], path: str, unknown: list[str]) -> None:
    if schema.get("x-kubernetes-int-or-string") or schema.get("x-kubernetes-embedded-resource"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(value):
            sub: dict[str, Any] | None = None
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(additional, dict):
                sub = additional
            elif additional is True or preserve:
                continue
            else:
                unknown.append(_child(path, key))
                del value[key]
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]
                continue
            _prune(value[key], sub, _child(path, key), unknown)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _prune(item, items, f"{path}[{index}]", unknown)


# -------------------------------------------------------------------------------------------- defaulting

def apply_defaults(obj: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """Structural defaulting, in place."""
    if schema is not None:
        _default(obj, schema, root=True)


def _default(value: Any, schema: dict[str, Any], root: bool = False) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if root and key in ROOT_KEYS:
                continue
            if (key not in value or (value[key] is None and not sub.get("nullable"))) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in props:
                    _default(value[key], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                _default(item, items)


# -------------------------------------------------------------------------------------------- validation

def validate(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[FieldError]:
    """Every violation of the schema, as field errors (root ``apiVersion``/``kind``/``metadata`` skipped)."""
    errors: list[FieldError] = []
    if schema is None:
        return errors
    root = {k: v for k, v in obj.items() if k not in ROOT_KEYS}
    root_schema = dict(schema)
    root_schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in ROOT_KEYS}
    root_schema["required"] = [k for k in schema.get("required") or [] if k not in ROOT_KEYS]
    _validate(root, root_schema, "", errors)
    return errors


def _numeric_text(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _validate(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    where = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return
        wanted = schema.get("type") or ("integer,string" if schema.get("x-kubernetes-int-or-string") else None)
        if wanted:
            errors.append(FieldError.type_invalid(path, "null", f'{where} in body must be of type {wanted}: "null"'))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (_has_type(value, "integer") or _has_type(value, "string")):
            name = _type_name(value)
            errors.append(FieldError.type_invalid(path, name, f'{where} in body must be of type integer,string: "{name}"'))
            return
    wanted = schema.get("type")
    if wanted and not _has_type(value, wanted):
        name = _type_name(value)
        errors.append(FieldError.type_invalid(path, name, f'{where} in body must be of type {wanted}: "{name}"'))
        return

    if "enum" in schema:
        if not any(_same(value, choice) for choice in schema["enum"]):
            errors.append(FieldError.not_supported(path, value, schema["enum"]))

    if isinstance(value, str):
        _validate_string(value, schema, path, where, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, where, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, where, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, where, errors)

    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, errors)
    if schema.get("anyOf") and not schema.get("x-kubernetes-int-or-string"):
        if not any(not _errors_of(value, sub, path) for sub in schema["anyOf"]):
            errors.append(FieldError.invalid(path, value, f"{where} in body must validate at least one schema (anyOf)"))
    if schema.get("oneOf"):
        matches = sum(1 for sub in schema["oneOf"] if not _errors_of(value, sub, path))
        if matches != 1:
            errors.append(FieldError.invalid(path, value, f"{where} in body must validate one and only one schema (oneOf)"))
    if isinstance(schema.get("not"), dict) and not _errors_of(value, schema["not"], path):
        errors.append(FieldError.invalid(path, value, f"{where} in body should not validate the schema (not)"))


def _errors_of(value: Any, schema: dict[str, Any], path: str) -> list[FieldError]:
    found: list[FieldError] = []
    _validate(value, schema, path, found)
    return found


def _same(a: Any, b: Any) -> bool:
    return _type_name(a) == _type_name(b) and a == b or (
        _has_type(a, "number") and _has_type(b, "number") and a == b)


def _validate_string(value: str, schema: dict[str, Any], path: str, where: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError.too_long(path, schema["maxLength"]))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(FieldError.invalid(path, value, f"{where} in body should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        errors.append(FieldError.invalid(path, value, f"{where} in body should match '{schema['pattern']}'"))


def _validate_number(value: float, schema: dict[str, Any], path: str, where: str, errors: list[FieldError]) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            errors.append(FieldError.invalid(path, value, f"{where} in body should be greater than {_numeric_text(low)}"))
        elif value < low:
            errors.append(FieldError.invalid(
                path, value, f"{where} in body should be greater than or equal to {_numeric_text(low)}"))
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            errors.append(FieldError.invalid(path, value, f"{where} in body should be less than {_numeric_text(high)}"))
        elif value > high:
            errors.append(FieldError.invalid(
                path, value, f"{where} in body should be less than or equal to {_numeric_text(high)}"))
    if schema.get("multipleOf") and (value / schema["multipleOf"]) % 1 != 0:
        errors.append(FieldError.invalid(
            path, value, f"{where} in body should be a multiple of {_numeric_text(schema['multipleOf'])}"))


def _validate_array(value: list[Any], schema: dict[str, Any], path: str, where: str,
                    errors: list[FieldError]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError.too_many(path, len(value), schema["maxItems"]))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(FieldError.invalid(path, len(value), f"{where} in body should have at least {schema['minItems']} items"))
    if schema.get("uniqueItems"):
        seen: set[str] = set()
        for item in value:
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                errors.append(FieldError(path, "FieldValueDuplicate", f"Duplicate value: {json.dumps(item)}"))
            seen.add(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", errors)


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str, where: str,
                     errors: list[FieldError]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(FieldError.required(_child(path, key)))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(FieldError.too_many(path, len(value), schema["maxProperties"]))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(FieldError.invalid(
            path, len(value), f"{where} in body should have at least {schema['minProperties']} properties"))
    props = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _validate(item, props[key], _child(path, key), errors)
        elif isinstance(additional, dict):
            _validate(item, additional, _child(path, key), errors)
