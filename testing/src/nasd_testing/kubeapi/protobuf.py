"""Request bodies in Kubernetes protobuf (``application/vnd.kubernetes.protobuf``).

kubectl's typed clients (``kubectl create namespace``, ``kubectl create
secret generic``, ``kubectl create configmap``...) send built-in objects as
protobuf: the bytes ``k8s\\x00`` then a ``runtime.Unknown`` message whose
``raw`` field holds the object's message from ``k8s.io/api``'s
``generated.proto``. The real apiserver decodes every built-in type that way.
This fake decodes the messages of the kinds kubectl creates with typed
clients here - Namespace, Secret, ConfigMap, ServiceAccount - plus
``DeleteOptions``; other kinds get 415, and custom resources are never sent as
protobuf by any client. Answers are always JSON, which those clients accept
(they send ``Accept: application/vnd.kubernetes.protobuf,application/json``).
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, Union

from .status import bad_request, unsupported_media_type

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# A field is (json name, kind); kinds: "string", "bytes" (base64 in JSON), "int", "bool", "time",
# "map" (string->string), "bmap" (string->bytes), "strings" (repeated string), or a nested schema
# (dict) and a list holding one (repeated message).
Schema = dict[int, tuple[str, Union[str, dict, list]]]

OWNER_REFERENCE: Schema = {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                           5: ("apiVersion", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
OBJECT_META: Schema = {
    1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"), 4: ("selfLink", "string"),
    5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
    8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", "map"), 12: ("annotations", "map"), 13: ("ownerReferences", [OWNER_REFERENCE]),
    14: ("finalizers", "strings"),
}
OBJECT_REFERENCE: Schema = {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                            4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"),
                            7: ("fieldPath", "string")}
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", "strings")}),
                  3: ("status", {1: ("phase", "string")})},
    "Secret": {1: ("metadata", OBJECT_META), 2: ("data", "bmap"), 3: ("type", "string"), 4: ("stringData", "map"),
               5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", OBJECT_META), 2: ("data", "map"), 3: ("binaryData", "bmap"),
                  4: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", OBJECT_META), 2: ("secrets", [OBJECT_REFERENCE]),
                       3: ("imagePullSecrets", [{1: ("name", "string")}]),
                       4: ("automountServiceAccountToken", "bool")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"),
                      2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"), 5: ("dryRun", "strings")},
}
UNKNOWN: Schema = {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}), 2: ("raw", "raw"),
                   3: ("contentEncoding", "string"), 4: ("contentType", "string")}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for every field of a message."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes) -> str | None:
    seconds = 0
    for number, _wire, value in _fields(data):
        if number == 1:
            seconds = _signed(value)
    if seconds == 0:
        return None  # the zero time: omitted in JSON
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _wire, raw in _fields(data):
        if number == 1:
            key = raw.decode()
        elif number == 2:
            value = raw
    return key, value


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue  # unknown fields are dropped, as the real decoder does
        name, kind = schema[number]
        if kind == "string":
            if value:  # Go's zero value, which JSON omits (omitempty)
                obj[name] = value.decode()
        elif kind == "raw":
            obj[name] = value
        elif kind == "bytes":
            obj[name] = base64.b64encode(value).decode()
        elif kind == "int":
            obj[name] = _signed(value)
        elif kind == "bool":
            obj[name] = bool(value)
        elif kind == "time":
            stamp = _time(value)
            if stamp is not None:
                obj[name] = stamp
        elif kind == "strings":
            obj.setdefault(name, []).append(value.decode())
        elif kind in ("map", "bmap"):
            key, raw = _entry(value)
            obj.setdefault(name, {})[key] = raw.decode() if kind == "map" else base64.b64encode(raw).decode()
        elif isinstance(kind, dict):
            obj[name] = decode_message(value, kind)
        elif isinstance(kind, list):
            obj.setdefault(name, []).append(decode_message(value, kind[0]))
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it stands for; 415 for kinds this fake cannot read."""
    if not body.startswith(MAGIC):
        raise bad_request("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    try:
        unknown = decode_message(body[len(MAGIC):], UNKNOWN)
        type_meta = unknown.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in KINDS:
            raise unsupported_media_type(["application/json", "application/yaml"],
                                         f"this test server reads protobuf only for {', '.join(sorted(KINDS))}")
        obj = decode_message(unknown.get("raw", b""), KINDS[kind])
    except ValueError as exc:
        raise bad_request(f"unable to decode protobuf body: {exc}") from None
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
