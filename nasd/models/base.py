"""The Kubernetes shape every resource shares: apiVersion, kind, metadata, spec, status.

Validation is strict: an unknown field is an error naming it. Names that later
reach a command line or a config file are checked here, before any plugin runs.

Every string a manifest gives (metadata and spec: values, dict keys, list items, at any depth)
is checked once, by ``StrictModel``, before any field validator sees it: no control character
(C0 including tab, DEL, C1), no line or paragraph separator (nothing ``str.splitlines`` breaks
on), no bidirectional control (what a name shows would differ from what it is), no unpaired
surrogate (it cannot be written as UTF-8), and at most ``MAX_TEXT`` characters. So nothing a
manifest says can end a line of smb.conf, an exports file, ``/etc/passwd`` or a state file.
"""

from __future__ import annotations

import datetime as _dt
import posixpath
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

API_GROUP = "nasd.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

#: characters no string of a manifest may hold (see the module docstring)
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: the longest string any field may hold (fields have their own, smaller limits); Kubernetes' limit
#: for all annotations of an object together
MAX_TEXT = 256 * 1024
_MAX_PROBLEMS = 20


def _describe(c: str) -> str:
    named = {"\t": "a tab", "\n": "a newline", "\r": "a carriage return", "\x00": "a NUL", "\x85": "a next-line",
             "\u2028": "a line separator", "\u2029": "a paragraph separator"}
    if c in named:
        return named[c]
    if "\u202a" <= c <= "\u2069":
        return "a bidirectional control"
    if "\ud800" <= c <= "\udfff":
        return "an unpaired surrogate"
    return "a control character"


def escape_unsafe(text: str) -> str:
    """``text`` with every refused character written as ``\\uXXXX``: safe to put in a message or a log."""
    return UNSAFE_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be in a manifest, or None when it may."""
    m = UNSAFE_TEXT.search(value)
    if m:
        return (f"the character \\u{ord(m.group()):04x} ({_describe(m.group())}) is refused: no value may hold "
                "control characters (tab, newline, ...), line or paragraph separators or bidirectional controls")
    if len(value) > MAX_TEXT:
        return f"a value may be at most {MAX_TEXT} characters, this one has {len(value)}"
    return None


def show_key(key: object) -> str:
    """A dict key that is not a string, as a short text (never the 5000 digits of a huge number)."""
    if isinstance(key, int) and not isinstance(key, bool) and abs(key) >= 10**64:
        return "<a number of more than 64 digits>"
    return str(key)[:64]


def unsafe_text_errors(data: Any) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Every refused string in ``data`` (a manifest part: dicts, lists, strings, at any depth, keys too),
    as (location, input, problem). Iterative, and each container is visited once, so neither deep
    nesting nor a YAML alias cycle can exhaust it."""
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack and len(found) < _MAX_PROBLEMS:
        loc, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                found.append((loc, value, problem))
        elif isinstance(value, (bytes, bytearray)):  # YAML's !!binary: pydantic would take it for a string
            found.append((loc, "<binary>", "a binary value (YAML !!binary) is refused: write the text itself"))
        elif isinstance(value, (dict, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, dict):
                for key, item in reversed(list(value.items())):
                    if not isinstance(key, str):  # YAML reads `1:`, `true:` and `~:` as other types
                        shown = show_key(key)
                        found.append((loc + (shown,), shown,
                                      f"a key must be a string, not {type(key).__name__}; quote it"))
                    elif problem := text_problem(key):
                        found.append((loc + (escape_unsafe(key[:64]),), key, "in this key: " + problem))
                    else:
                        stack.append((loc + (key,), item))
            else:
                stack.extend((loc + (i,), item) for i, item in reversed(list(enumerate(value))))
    found.sort(key=lambda f: tuple(str(p) for p in f[0]))
    return found


#: a DNS subdomain (RFC 1123), as Kubernetes checks object names: dot-separated parts of lower-case
#: letters, digits and '-', each starting and ending with a letter or digit, at most 253 characters in all
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"  # (Kubernetes' subdomain check has no 63 per part)
DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
DNS_NAME_MAX = 253
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
#: Kubernetes' limit for all annotations of an object, keys and values together
ANNOTATIONS_MAX = 256 * 1024


def is_dns_name(value: str) -> bool:
    return len(value) <= DNS_NAME_MAX and DNS_NAME.fullmatch(value) is not None


def _check_resource_name(value: str) -> str:
    if not is_dns_name(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case letters, digits, '-' and '.' (a DNS subdomain: "
            "dot-separated parts, each starting and ending with a letter or digit), at most 253 characters"
        )
    return value


ResourceName = Annotated[
    str,
    AfterValidator(_check_resource_name),
    WithJsonSchema({"type": "string", "maxLength": DNS_NAME_MAX, "pattern": f"^{DNS_NAME.pattern}$"}),
]


def _check_absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path (starting with '/')")
    if len(value) > 1024:
        raise ValueError("a path may be at most 1024 characters")
    if text_problem(value):  # (checked here too: a path must never carry a newline, whatever came before)
        raise ValueError(f"{escape_unsafe(value)!r}: {text_problem(value)}")
    if "%" in value:
        raise ValueError(f"{value!r}: a path may not contain '%' (smb.conf would read %u, %m, ... as substitutions)")
    if any(p in (".", "..") for p in value.split("/")) or value != posixpath.normpath(value) or value.startswith("//"):
        raise ValueError(f"{value!r}: write the path plainly: no '.' or '..' parts, no '//' and no '/' at the end")
    return value


AbsolutePath = Annotated[str, AfterValidator(_check_absolute_path)]  # also a dict key: no schema keywords


class StrictModel(BaseModel):
    """Base for every spec part: unknown fields are errors, aliases are the manifest names, and no
    string in it holds a refused character (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=False)

    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        # In a resource, Resource has checked the whole manifest already (one walk, locations from its
        # root); this is for a part validated on its own.
        return refuse_unsafe_text(cls.__name__, data)


def refuse_unsafe_text(title: str, data: Any, skip: tuple[str, ...] = ()) -> Any:
    """``data`` when no string in it is refused, else a ValidationError with one line per refused string."""
    if not isinstance(data, dict):
        return data
    errors = unsafe_text_errors({k: (None if k in skip else v) for k, v in data.items()})
    if errors:
        raise ValidationError.from_exception_data(title, [
            {"type": PydanticCustomError("unsafe_text", "{problem}", {"problem": problem}), "loc": loc, "input": value}
            for loc, value, problem in errors
        ])
    return data


def _check_key(key: str, what: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if (slash and not is_dns_name(prefix)) or not _LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"{what} {key[:300]!r} is not a valid Kubernetes {what}: an optional DNS-subdomain prefix and '/', "
            "then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, v in value.items():
        _check_key(key, "label")
        if not _LABEL_VALUE.fullmatch(v):
            raise ValueError(
                f"label {key!r}: the value {v[:80]!r} is not a valid label value: at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit (or empty)"
            )
    return value


def _check_annotations(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        _check_key(key, "annotation")
    total = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
    if total > ANNOTATIONS_MAX:
        raise ValueError(f"the annotations together may be at most {ANNOTATIONS_MAX} bytes (as in Kubernetes), "
                         f"these have {total}")
    return value


def _check_finalizers(value: list[str]) -> list[str]:
    for item in value:
        _check_key(item, "finalizer")
    return value


def _without_annotation_values(metadata: Any) -> Any:
    """``metadata`` with newlines, carriage returns and tabs taken out of its annotations' values, for the text
    check: Kubernetes tools keep JSON of several lines there (nasd reads a few of its own, compared whole, and
    no annotation reaches a command or a file); every other character, and the keys, are checked as usual."""
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        return {**metadata, "annotations": {
            k: v.replace("\n", "").replace("\r", "").replace("\t", "") if isinstance(v, str) else v
            for k, v in metadata["annotations"].items()}}
    return metadata


class Metadata(StrictModel):
    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        refuse_unsafe_text(cls.__name__, _without_annotation_values(data))
        return data

    name: ResourceName
    namespace: str | None = Field(default=None, max_length=63)
    labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], AfterValidator(_check_annotations)] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = Field(default=None, max_length=128)
    resourceVersion: str | None = Field(default=None, max_length=128)
    creationTimestamp: str | None = Field(default=None, max_length=64)
    deletionTimestamp: str | None = Field(default=None, max_length=64)
    finalizers: Annotated[list[str], AfterValidator(_check_finalizers)] = Field(default_factory=list)


class Condition(BaseModel):
    """One observation about a resource, the Kubernetes way (see ``nasd.conditions``)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observedGeneration: int | None = None
    lastTransitionTime: str = Field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


class Status(BaseModel):
    """Status common to every kind; each kind adds its own fields, plugins may add more."""

    model_config = ConfigDict(extra="allow")

    conditions: list[Condition] = Field(default_factory=list)
    observedGeneration: int | None = None


class Resource(BaseModel):
    """A resource: ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``."""

    model_config = ConfigDict(extra="forbid")

    #: plural used in API paths and CRD names, set by each kind
    plural: ClassVar[str] = ""
    short_names: ClassVar[tuple[str, ...]] = ()
    #: the order in which kinds are reconciled: pools, then datasets, then the rest
    phase: ClassVar[int] = 50
    #: the spec field shown in `nasd get` and as a CRD printer column: (header, JSONPath in the object)
    key_column: ClassVar[tuple[str, str] | None] = None
    #: more CRD printer columns after the key column, e.g. a share's UNC path: (header, JSONPath, priority);
    #: priority 1 shows only in `kubectl get -o wide`
    extra_columns: ClassVar[tuple[tuple[str, str, int], ...]] = ()

    apiVersion: Literal["nasd.io/v1alpha1"] = GROUP_VERSION
    kind: str
    metadata: Metadata
    spec: Any
    status: Status = Field(default_factory=Status)

    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        # every string a manifest gives, once, before any field is read; status is nasd's own report
        # (messages quote what commands said) and never reaches a command or a config file
        if isinstance(data, dict) and not isinstance(data.get("metadata"), BaseModel):
            refuse_unsafe_text(cls.__name__, {**data, "metadata": _without_annotation_values(data.get("metadata"))},
                               skip=("status",))
        return data

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.metadata.name)

    def replaced_by(self, new: "Resource") -> str | None:
        """Why ``new`` (the same kind and name) cannot be converged from this resource in place,
        so that the old one must be removed first; None when it can (the usual case)."""
        return None

    def dependencies(self) -> list[tuple[str, str, str]]:
        """Resources this one needs Ready first, as (kind, name, reason-when-not-ready)."""
        return []

    def condition(self, type_: str) -> Condition | None:
        for c in self.status.conditions:
            if c.type == type_:
                return c
        return None

    @property
    def ready(self) -> bool:
        c = self.condition("Ready")
        return c is not None and c.status == "True"

    @property
    def available(self) -> bool:
        """Ready, or serving while it converges: the condition ``Available`` is True (a pool resilvering onto a new
        disk serves its datasets meanwhile). What depends on a resource waits only until it is available."""
        if self.ready:
            return True
        c = self.condition("Available")
        return c is not None and c.status == "True"

    def spec_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]

    def to_manifest(self, *, with_status: bool = True) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not with_status:
            data.pop("status", None)
        return data


#: what happens to the data when the resource is deleted: Retain keeps it (and stops managing it)
DeletionPolicy = Literal["Retain", "Destroy"]
