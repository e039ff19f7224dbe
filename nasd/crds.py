"""Kubernetes CustomResourceDefinitions (apiextensions.k8s.io/v1), generated from the resource models.

Every kind is cluster-scoped: pools, datasets, shares and identities are node-level
storage objects, not something a namespace owns.

The pydantic JSON schema of each spec and status model is made *structural*, as the
API server requires: ``$ref`` is inlined, ``title`` dropped, ``X | None`` becomes X with
``nullable: true``, ``const`` becomes a one-value ``enum``, sizes are
``x-kubernetes-int-or-string``, and free-form maps (``additionalProperties: true``, such as
ZFS properties) become ``x-kubernetes-preserve-unknown-fields``. ``additionalProperties:
false`` is dropped: the API server prunes (or, with strict field validation, rejects)
unknown fields itself. Checks written as Python validators are not in the CRD; nasd still
runs them and reports a failure in the Ready condition.

    python -m nasd.crds [DIR]     # writes DIR/<plural>.nasd.io.yaml (default: the repo's crds/)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .models import KINDS, Resource
from .models.base import API_GROUP, API_VERSION

Schema = dict[str, Any]

#: keywords copied as they are; anything else pydantic emits is an error, not a silently broken CRD
_PLAIN = frozenset(
    {
        "type", "description", "default", "enum", "required", "nullable", "format",
        "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
        "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    }
)  # fmt: skip
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_READY = '.status.conditions[?(@.type=="Ready")]'


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's validation JSON schema, rewritten into a Kubernetes structural schema."""
    schema = model.model_json_schema(mode="validation")
    return _convert(schema, schema.get("$defs", {}), model.__name__)


def _convert(node: Schema, defs: dict[str, Schema], where: str) -> Schema:
    if "$ref" in node:  # the definition, with the field's own keywords (description, default) on top
        ref = node["$ref"].rsplit("/", 1)[-1]
        return _convert({**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}}, defs, where)
    if "anyOf" in node and {"type": "null"} in node["anyOf"]:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
        merged = {**branches[0], **rest} if len(branches) == 1 else {**rest, "anyOf": branches}
        return _convert({**merged, "nullable": True}, defs, where)

    out: Schema = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out[key] = _convert(value, defs, f"{where}.*")
        elif key == "const":
            out["enum"] = [value]
        elif key == "anyOf" and value == INT_OR_STRING and node.get("x-kubernetes-int-or-string"):
            out[key] = value
        elif key in _PLAIN:
            out[key] = value
        else:
            raise ValueError(f"{where}: {key}: {value!r} has no structural CRD form; change the model")
    if not ({"type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields"} & out.keys()):
        out["x-kubernetes-preserve-unknown-fields"] = True  # an Any field
    return {**{k: out[k] for k in ("type", "description") if k in out}, **out}  # type first reads best


def _field_model(cls: type[Resource], field: str) -> type[BaseModel]:
    model = cls.model_fields[field].annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{cls.__name__}.{field} must be a pydantic model to become a CRD schema")
    return model


def open_api_schema(cls: type[Resource]) -> Schema:
    spec, status = _field_model(cls, "spec"), _field_model(cls, "status")
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            # Plugins add their own status fields.
            "status": {**structural_schema(status), "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def _column_type(schema: Schema, json_path: str) -> str:
    node = schema
    for part in json_path.lstrip(".").split("."):
        node = node.get("properties", {}).get(part, {})
    return node["type"] if node.get("type") in ("integer", "number", "boolean") else "string"


def printer_columns(cls: type[Resource], schema: Schema) -> list[Schema]:
    columns = [
        {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason"},
    ]
    if cls.key_column:
        header, path = cls.key_column
        columns.append({"name": header, "type": _column_type(schema, path), "jsonPath": path})
    for header, path, priority in cls.extra_columns:
        columns.append({"name": header, "type": _column_type(schema, path), "jsonPath": path,
                        **({"priority": priority} if priority else {})})
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return columns


def generate_crd(cls: type[Resource]) -> dict[str, Any]:
    kind = cls.__name__
    schema = open_api_schema(cls)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{cls.plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": cls.plural,
                "singular": kind.lower(),
                "shortNames": list(cls.short_names),
                "categories": ["nas"],
            },
            "scope": "Cluster",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(cls, schema),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def generate_crds() -> list[dict[str, Any]]:
    return [generate_crd(cls) for cls in KINDS.values()]


def dump_crd(crd: dict[str, Any]) -> str:
    return yaml.safe_dump(crd, sort_keys=False)


def render_crds() -> str:
    """Every CRD as one multi-document YAML stream, in KINDS order."""
    return "---\n".join(dump_crd(crd) for crd in generate_crds())


def crd_filename(crd: dict[str, Any]) -> str:
    return f"{crd['metadata']['name']}.yaml"


def write_crds(directory: Path) -> list[Path]:
    """Write ``<plural>.nasd.io.yaml`` per kind into ``directory``; remove those of kinds that are gone."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in generate_crds():
        path = directory / crd_filename(crd)
        path.write_text(dump_crd(crd))
        written.append(path)
    for stale in set(directory.glob(f"*.{API_GROUP}.yaml")) - set(written):
        stale.unlink()
    return written


DEFAULT_DIR = Path(__file__).resolve().parent.parent / "crds"

if __name__ == "__main__":
    for written_path in write_crds(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(written_path)
