"""Hostile manifests against every string field of every kind (issue 14).

Starting from valid manifests (examples/ and a few more, so that every string field the models have is
given somewhere: a test below walks the pydantic models to check that), one string at a time (a value,
a list item or a dict key) is replaced by, or spliced with, a payload from a catalogue: control
characters and Unicode separators, smb.conf '%' substitutions, paths with '..', overlong and huge
strings, config syntax, other types. Whatever comes out of ``parse_resource`` is either a clean
``ManifestError`` naming the field, or a resource whose every value is harmless; never another
exception.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from nasd.models import KINDS, ManifestError, Resource, parse_resource
from nasd.models.base import MAX_TEXT, UNSAFE_TEXT, escape_unsafe, show_key

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _doc(kind: str, name: str, spec: dict, **metadata: Any) -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


#: valid manifests that, with examples/, give every string field of every kind
EXTRA_SEEDS = [
    _doc("ZPool", "tank", {"vdevs": [{"type": "mirror", "devices": ["/srv/a.img", "/srv/b.img"]}],
                           "files": {"/srv/a.img": "1Gi", "/srv/b.img": 1 << 30}, "mountpoint": "/mnt/tank",
                           "properties": {"compression": "lz4", "com.example:owner": "ops"}, "node": "node-a",
                           "deletionPolicy": "Destroy", "destroyRecursive": True,
                           "scrub": {"schedule": {"interval": "7d"}}},
         namespace="default", labels={"app.kubernetes.io/name": "nasd"}, annotations={"nasd.io/adopt": "true"},
         uid="0f8e9c1a-1111-2222-3333-444455556666", resourceVersion="42", generation=3,
         creationTimestamp="2026-01-01T00:00:00Z", deletionTimestamp="2026-01-02T00:00:00Z",
         finalizers=["nasd.io/cleanup"]),
    _doc("ZDataset", "media", {"pool": "tank", "path": "media/films", "mountpoint": "/mnt/tank/films",
                               "properties": {"recordsize": "1Mi", "quota": "none"},
                               "owner": {"uid": 2001, "gid": 3001, "mode": "2770"}}),
    _doc("NASDirectory", "corp", {"type": "ldap", "ldap": {
        "uri": "ldaps://ldap.example.org:636", "baseDN": "dc=example,dc=org", "bindDN": "cn=nasd,dc=example,dc=org",
        "bindPasswordSecretRef": {"name": "ldap-bind", "key": "password"}}}),
    _doc("NASDirectory", "ad", {"type": "ad", "ad": {"realm": "CORP.EXAMPLE.ORG", "workgroup": "CORP",
                                                     "joinSecretRef": {"file": "/etc/nasd/secrets/join"}}}),
    _doc("NASDirectory", "corp2", {"type": "ldap", "ldap": {
        "uri": "ldap://ldap.example.org/", "baseDN": "dc=example,dc=org",
        "bindPasswordSecretRef": {"file": "/etc/nasd/secrets/ldap"}}}),
    _doc("NASDirectory", "ad2", {"type": "ad", "ad": {"realm": "corp.example.org", "workgroup": "CORP2",
                                                      "joinSecretRef": {"name": "ad-join", "key": "join.pw"}}}),
    _doc("NASUser", "bob", {"directory": "local", "uid": 2002, "passwordSecretRef": {"name": "bob", "key": "pw"}}),
    _doc("NASUser", "alice", {"directory": "local", "uid": 2001, "primaryGroup": "staff", "groups": ["staff"],
                              "fullName": "Alice Smith", "passwordSecretRef": {"file": "/etc/nasd/secrets/alice"}}),
    _doc("NASGroup", "staff", {"directory": "local", "gid": 3001, "members": ["alice"]}),
    _doc("NASShare", "media", {"protocol": "smb", "dataset": "media", "smb": {
        "name": "Media$", "validUsers": ["alice"], "validGroups": ["staff"], "adminUsers": ["alice"],
        "writeList": ["alice"], "hostsAllow": ["192.168.1.0/24", "nas.lan.example"], "hostsDeny": ["10.0.0.5"],
        "createMask": "0664", "directoryMask": "0775", "forceUser": "alice", "forceGroup": "staff",
        "caseSensitive": "yes", "extraParameters": {"veto files": "/.DS_Store/", "max connections": "10"},
        "timeMachine": {"enabled": True, "maxSize": "500Gi"}}}),
    _doc("NASShare", "media-nfs", {"protocol": "nfs", "dataset": "media", "nfs": {"fsid": 101, "clients": [
        {"hosts": ["192.168.1.0/24", "*.lan.example"], "access": "rw"},
        {"hosts": ["@backup-hosts"], "access": "ro", "squash": "all", "anonuid": 3000, "anongid": 3000},
        {"hosts": ["10.0.0.5", "fd00::/8"], "squash": "none", "security": ["krb5p"], "sync": False}]}}),
    _doc("ZSnapshotSchedule", "media-hourly", {"datasets": ["media"], "recursive": True, "exclude": ["media/tmp"],
                                               "schedule": {"cron": "0 * * * *", "interval": "15m"},
                                               "format": "auto-%Y%m%d-%H%M"}),
    _doc("ZSnapshotRestore", "media-check", {"mode": "clone",
                                             "source": {"dataset": "media", "snapshot": "GMT-2026.11.26-04.00.00"},
                                             "target": {"path": "restore/media-check"},
                                             "share": {"protocol": "nfs", "name": "media-check", "fsid": 7}}),
    _doc("ZSnapshotRestore", "media-newest", {"source": {"dataset": "media", "selector": {"prefix": "GMT-"}},
                                              "target": {"path": "restore/newest"}}),
]


def _seeds() -> list[dict]:
    docs = [d for p in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return docs + EXTRA_SEEDS


SEEDS = _seeds()
Path_ = tuple[Any, ...]


def _dotted(path: Path_) -> str:
    """A location as ManifestError writes it (``spec.nfs.clients[0].hosts[1]``)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + escape_unsafe(str(part)[:256])
    return out


def _strings(node: Any, path: Path_ = ()) -> list[tuple[Path_, bool]]:
    """Every string of a manifest part: (path, is_dict_key)."""
    found: list[tuple[Path_, bool]] = []
    if isinstance(node, str):
        found.append((path, False))
    elif isinstance(node, dict):
        for key, value in node.items():
            if path == () and key in ("apiVersion", "kind"):
                continue
            found.append((path + (key,), True))
            found += _strings(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _strings(value, path + (i,))
    return found


#: (seed index, path, is_dict_key): every string of every seed
TARGETS = [(i, path, is_key) for i, doc in enumerate(SEEDS) for path, is_key in _strings(doc)
           if not (is_key and path[-1] == "spec" and len(path) == 1)]


# -- which fields the models have, walked generically -----------------------------------------------------

def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _models_in(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for a in _args(tp) for m in _models_in(a)]


def _has_free_str(tp: Any) -> bool:
    """A string the manifest writes freely (not one of a Literal's values, not a nested model)."""
    if tp is str:
        return True
    if typing.get_origin(tp) is Literal:
        return False
    return any(_has_free_str(a) for a in _args(tp))


def _string_fields(model: type[BaseModel], prefix: str) -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        where = f"{prefix}.{key}"
        if _has_free_str(field.annotation):
            out.add(where)
        for sub in _models_in(field.annotation):
            out |= _string_fields(sub, where)
    return out


def _field_of(model: type[BaseModel], path: Path_) -> str:
    """The model field a path of a manifest falls in (list indices and dict keys dropped)."""
    where = ""
    node: type[BaseModel] | None = model
    for part in path:
        if isinstance(part, int):
            continue
        if node is None:  # below a dict or a plain value: the key belongs to the field already named
            break
        field = next((f for n, f in node.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            break
        where += ("." if where else "") + part
        subs = _models_in(field.annotation)
        node = subs[0] if subs else None
    return where


def test_the_seeds_are_valid_and_give_every_string_field_of_every_kind():
    for doc in SEEDS:
        parse_resource(doc, "seed")
    for kind, cls in KINDS.items():
        wanted = {f for f in _string_fields(cls, "") if not f.startswith((".status", ".apiVersion", ".kind"))}
        wanted = {f[1:] for f in wanted}
        given_ = {_field_of(cls, path) for i, path, _ in TARGETS
                  if SEEDS[i]["kind"] == kind or path[0] == "metadata"}  # one Metadata model for every kind
        assert wanted - given_ == set(), f"{kind}: add a seed giving these fields"


# -- the payloads --------------------------------------------------------------------------------------------

REFUSED = ["\x00", "\t", "\n", "\v", "\f", "\r", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\x80", "\x85",
           "\x9f", "\u2028", "\u2029", "\u202e", "\u2066", "\ud800", "\udfff"]
TEXT_PAYLOADS = REFUSED + [
    "%u", "%m", "%S", "%%", "%", "%(rm -rf /)",
    "..", ".", "../../etc/shadow", "/..", "/../etc", "a/../b", "/etc/passwd", "//", "/",
    "", " ", " x", "x ", "a" * 64, "a" * 254, "a" * 1025, "a" * 70_000, "a" * 300_000,
    "[global]", "]\n[global]", "; include = /etc/x", "#", "\\", '"', "'", "$(id)", "`id`", "-rf", "*", "@all",
    "0.0.0.0/0", "::/0", "0.0.0.0/1", "256.0.0.1", "é", "ａ", "\u200b", "\ufeff", "\U0001f600", ":", ",", "=",
]
_cycle: list[Any] = []
_cycle.append(_cycle)
_deep: list[Any] = []
_node = _deep
for _ in range(5000):
    _node.append([])
    _node = _node[0]
OTHER_PAYLOADS: list[Any] = [5, -1, 10 ** 5000, 1.5, float("nan"), True, None, [], {}, ["x"], {"a": "b"}, _cycle,
                             _deep]
MODES = ["replace", "append", "prepend", "insert"]


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate(doc: dict, path: Path_, is_key: bool, payload: Any, mode: str) -> tuple[dict, Any]:
    """A copy of ``doc`` with the string at ``path`` changed; returns it and the string (or value) now there."""
    out = copy.deepcopy(doc)
    parent = _get(out, path[:-1])
    old = path[-1] if is_key else parent[path[-1]]
    if isinstance(payload, str) and mode != "replace":
        mid = len(old) // 2
        new: Any = {"append": old + payload, "prepend": payload + old, "insert": old[:mid] + payload + old[mid:]}[mode]
    else:
        new = payload
    if is_key:
        if not isinstance(new, (str, int, float, bool, type(None))):
            new = repr(new)[:100]  # a YAML key is a scalar
        items = list(parent.items())
        parent.clear()
        parent.update((new if k == old else k, v) for k, v in items)
    else:
        parent[path[-1]] = new
    return out, new


# -- what may come out ---------------------------------------------------------------------------------------

#: fields whose values are free text nasd passes on as data, never as syntax (a '%' or '..' there is text)
FREE_TEXT = ("metadata.annotations", "metadata.namespace", "metadata.uid", "metadata.resourceVersion",
             "metadata.creationTimestamp", "metadata.deletionTimestamp", "spec.properties", "spec.fullName",
             "spec.smb.extraParameters", "spec.format")

#: fields that are file system or dataset paths (a '..' there would climb out)
PATH_FIELDS = {"devices", "files", "mountpoint", "file", "path", "exclude"}


def _harmless(resource: Resource) -> None:
    manifest = resource.to_manifest(with_status=False)
    for path, _ in _strings(manifest):
        value = path[-1] if _ else _get(manifest, path)
        if not isinstance(value, str):
            continue
        where = _dotted(path)
        if path[:2] == ("metadata", "annotations") and not _:
            value = value.replace("\n", "").replace("\r", "").replace("\t", "")  # (may span lines there)
        assert not UNSAFE_TEXT.search(value), f"{where}: {value!r} was accepted"
        assert len(value) <= MAX_TEXT, f"{where}: {len(value)} characters were accepted"
        if not where.startswith(FREE_TEXT):
            assert "%" not in value, f"{where}: {value!r} was accepted with a '%'"
            if PATH_FIELDS & set(path):
                assert ".." not in value.split("/"), f"{where}: {value!r} was accepted with a '..' component"


def _names_the_field(problem: str, path: Path_) -> bool:
    """The problem is located at the field, inside it, or at an object holding it (whose message then says
    which of its fields is wrong)."""
    loc = problem.split(": ", 1)[0]
    field = _dotted(path)
    return field.startswith(loc) or loc.startswith(field)


def _check(doc: dict, path: Path_, new: Any) -> None:
    try:
        resource = parse_resource(doc, "hostile.yaml")
    except ManifestError as e:
        text = str(e)
        assert not UNSAFE_TEXT.search(text), f"the message echoes a refused character: {text[:300]!r}"
        assert e.problems and all(p.strip() for p in e.problems)
        if path[0] in ("apiVersion", "kind"):
            return
        assert any(_names_the_field(p, path) for p in e.problems), f"{_dotted(path)} is not named: {e.problems}"
        if isinstance(new, str) and UNSAFE_TEXT.search(new):
            c = UNSAFE_TEXT.search(new).group()  # type: ignore[union-attr]
            assert any(f"\\u{ord(c):04x}" in p and _names_the_field(p, path) for p in e.problems), e.problems
    else:
        _harmless(resource)


_SETTINGS = settings(max_examples=400, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(target=st.sampled_from(TARGETS), payload=st.sampled_from(TEXT_PAYLOADS + OTHER_PAYLOADS[:-2]),
       mode=st.sampled_from(MODES))
def test_a_hostile_string_anywhere_is_refused_naming_its_field_or_is_harmless(target, payload, mode):
    seed, path, is_key = target
    doc, new = _mutate(SEEDS[seed], path, is_key, payload, mode)
    _check(doc, path[:-1] + (new if isinstance(new, str) else show_key(new),) if is_key else path, new)


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"u{ord(c):04x}")
def test_every_refused_character_is_refused_in_every_string_of_every_seed(char):
    # exhaustive for the characters (cheap): every string of every seed, the character in the middle
    for seed, path, is_key in TARGETS:
        if path[:2] == ("metadata", "annotations") and not is_key and char in "\n\r\t":
            continue  # (an annotation's value may span lines, as Kubernetes tools write JSON there)
        doc, new = _mutate(SEEDS[seed], path, is_key, char, "insert")
        with pytest.raises(ManifestError) as info:
            parse_resource(doc, "hostile.yaml")
        where = _dotted(path[:-1] + (new,) if is_key else path)
        assert any(p.startswith(where + ": ") and f"\\u{ord(char):04x}" in p for p in info.value.problems), \
            (where, info.value.problems)


@_SETTINGS
@given(seed=st.sampled_from(range(len(SEEDS))), text=st.text(min_size=1, max_size=40))
def test_any_text_as_a_new_label_or_annotation_is_refused_or_harmless(seed, text):
    doc = copy.deepcopy(SEEDS[seed])
    doc["metadata"]["labels"] = {"app": text}
    doc["metadata"]["annotations"] = {text: "x"}
    try:
        resource = parse_resource(doc, "hostile.yaml")
    except ManifestError as e:
        assert not UNSAFE_TEXT.search(str(e))
        assert all(p.startswith(("metadata.labels", "metadata.annotations")) for p in e.problems), e.problems
    else:
        _harmless(resource)


def test_deep_nesting_and_alias_cycles_are_refused_cleanly():
    for payload in (_deep, _cycle):
        for seed, path, is_key in TARGETS[:50]:
            if not is_key:
                doc, _ = _mutate(SEEDS[seed], path, False, payload, "replace")
                with pytest.raises(ManifestError):
                    parse_resource(doc, "hostile.yaml")

