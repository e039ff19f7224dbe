"""The CRDs in crds/ are generated from the models, structural, and accept what the models accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from nasd.crds import (
    INT_OR_STRING,
    crd_filename,
    dump_crd,
    generate_crd,
    generate_crds,
    render_crds,
    structural_schema,
    write_crds,
)
from nasd.models import KINDS, ManifestError, Resource, parse_resource

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"
ALL_KINDS = pytest.mark.parametrize("cls", list(KINDS.values()), ids=list(KINDS))


def openapi(cls: type[Resource]) -> dict[str, Any]:
    return generate_crd(cls)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_files_match_the_models() -> None:
    expected = {crd_filename(crd): dump_crd(crd) for crd in generate_crds()}
    actual = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    stale = sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))
    assert not stale, f"crds/ is out of date with nasd/models ({', '.join(stale)}): run `make crds`"


def test_render_crds_is_every_crd_in_kinds_order() -> None:
    docs = list(yaml.safe_load_all(render_crds()))
    assert docs == generate_crds()
    assert [d["spec"]["names"]["kind"] for d in docs] == list(KINDS)


def test_write_crds_writes_one_file_per_kind_and_removes_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "gone.nasd.io.yaml").write_text("old")
    (tmp_path / "README.md").write_text("kept")
    written = write_crds(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in written] + ["README.md"])
    assert {p.name for p in written} == {f"{cls.plural}.nasd.io.yaml" for cls in KINDS.values()}


@ALL_KINDS
def test_crd_names_scope_and_version(cls: type[Resource]) -> None:
    crd = generate_crd(cls)
    assert crd["metadata"]["name"] == f"{cls.plural}.nasd.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("nasd.io", "Cluster")
    assert spec["names"] == {
        "kind": cls.__name__,
        "listKind": f"{cls.__name__}List",
        "plural": cls.plural,
        "singular": cls.__name__.lower(),
        "shortNames": list(cls.short_names),
        "categories": ["nas"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def structural_problems(node: Any, where: str, *, typed: bool = True) -> list[str]:
    """What makes ``node`` non-structural by the Kubernetes rules (an empty list: nothing)."""
    if not isinstance(node, dict):
        return [f"{where}: a schema must be a mapping, got {node!r}"]
    forbidden = ("$ref", "$defs", "title", "const", "oneOf", "allOf", "not")
    problems = [f"{where}: {key} is not allowed" for key in forbidden if key in node]
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = "x-kubernetes-preserve-unknown-fields" in node
    if "anyOf" in node and not (int_or_string and node["anyOf"] == INT_OR_STRING):
        problems.append(f"{where}: anyOf other than the int-or-string form: {node['anyOf']}")
    if node.get("x-kubernetes-preserve-unknown-fields", True) is not True:
        problems.append(f"{where}: x-kubernetes-preserve-unknown-fields may only be true")
    if typed and "type" not in node and not (int_or_string or preserve):
        problems.append(f"{where}: no type")
    if ("properties" in node or "additionalProperties" in node) and node.get("type") != "object":
        problems.append(f"{where}: properties/additionalProperties need type: object")
    if "items" in node and node.get("type") != "array":
        problems.append(f"{where}: items needs type: array")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties together")
    if "default" in node and node["default"] is None:
        problems.append(f"{where}: default null")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{where}.{name}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{where}[]")
    if "additionalProperties" in node:
        problems += structural_problems(node["additionalProperties"], f"{where}.*")
    for branch in node.get("anyOf", []):
        problems += structural_problems(branch, f"{where}|", typed=False)
    return problems


@ALL_KINDS
def test_every_crd_schema_is_structural(cls: type[Resource]) -> None:
    schema = openapi(cls)
    assert structural_problems(schema, cls.__name__) == []
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    status = schema["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert status["properties"]["conditions"]["items"]["required"] == ["type", "status", "reason"]


def test_sizes_accept_integers_and_strings() -> None:
    zpool = openapi(KINDS["ZPool"])["properties"]["spec"]["properties"]
    assert zpool["files"]["additionalProperties"]["x-kubernetes-int-or-string"] is True
    share = openapi(KINDS["NASShare"])["properties"]["spec"]["properties"]
    max_size = share["smb"]["properties"]["timeMachine"]["properties"]["maxSize"]
    assert max_size["x-kubernetes-int-or-string"] is True and max_size["nullable"] is True


def test_optional_fields_become_nullable_and_literals_enums() -> None:
    class Part(BaseModel):
        """A part."""

        size: int = Field(default=1, ge=1, le=9)

    class Example(BaseModel):
        name: str | None = Field(default=None, description="A name", max_length=5)
        mode: Literal["clone"] = "clone"
        part: Part | None = None

    assert structural_schema(Example) == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "A name", "maxLength": 5, "nullable": True},
            "mode": {"type": "string", "enum": ["clone"], "default": "clone"},
            "part": {
                "type": "object",
                "description": "A part.",
                "properties": {"size": {"type": "integer", "default": 1, "minimum": 1, "maximum": 9}},
                "nullable": True,
            },
        },
    }


def test_a_model_keyword_without_a_structural_form_is_an_error() -> None:
    class Example(BaseModel):
        count: int = Field(gt=0)  # JSON schema 2020-12 exclusiveMinimum: a number, not the OpenAPI boolean

    with pytest.raises(ValueError, match="Example.count: exclusiveMinimum"):
        structural_schema(Example)


@ALL_KINDS
def test_printer_columns_show_ready_reason_and_the_key_column(cls: type[Resource]) -> None:
    columns = generate_crd(cls)["spec"]["versions"][0]["additionalPrinterColumns"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert by_name["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert by_name["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    if cls.key_column:
        header, path = cls.key_column
        assert by_name[header]["jsonPath"] == path
    assert [c["name"] for c in columns][:2] == ["Ready", "Reason"] and columns[-1]["name"] == "Age"


ZPOOL = """
apiVersion: nasd.io/v1alpha1
kind: ZPool
metadata: {name: tank}
spec:
  vdevs: [{type: mirror, devices: [/a, /b]}]
  files: {/a: 2Gi}
"""
ZDATASET = """
apiVersion: nasd.io/v1alpha1
kind: ZDataset
metadata: {name: media}
spec:
  pool: tank
  path: media
  properties: {compression: gzip-1, atime: "off", quota: 1Gi}
"""
# YAML 1.1 reads an unquoted off as false: the CRD must let a boolean through, as the model does.
ZDATASET_YAML_BOOL = ZDATASET.replace('atime: "off"', "atime: off, recordsize: 131072")
NASSHARE = """
apiVersion: nasd.io/v1alpha1
kind: NASShare
metadata: {name: backups}
spec:
  protocol: smb
  dataset: media
  smb: {timeMachine: {enabled: true, maxSize: 500Gi}}
"""


@pytest.mark.parametrize(
    "text", [ZPOOL, ZDATASET, ZDATASET_YAML_BOOL, NASSHARE], ids=["zpool", "zdataset", "yaml-bool", "share"]
)
def test_example_manifests_pass_the_crd_schema_and_the_model(text: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    manifest = yaml.safe_load(text)
    jsonschema.Draft4Validator(openapi(KINDS[manifest["kind"]])).validate(manifest)
    parse_resource(manifest)


@pytest.mark.parametrize(
    "text",
    [
        ZPOOL.replace("type: mirror", "type: raid5"),
        ZPOOL.replace("2Gi", "2G"),
        ZPOOL.replace("vdevs: [{type: mirror, devices: [/a, /b]}]", "vdevs: []"),
        NASSHARE.replace("protocol: smb", "protocol: afp"),
    ],
    ids=["unknown-vdev-type", "decimal-size-unit", "no-vdevs", "unknown-protocol"],
)
def test_invalid_specs_fail_the_crd_schema_and_the_model(text: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    manifest = yaml.safe_load(text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(openapi(KINDS[manifest["kind"]])).validate(manifest)
    with pytest.raises(ManifestError):
        parse_resource(manifest)
