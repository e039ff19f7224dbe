"""Hostile manifests for the tests of issue 14: an alias bomb of a few hundred bytes, a document
nested as deep as asked, and a harmless dataset (on a pool that does not exist) to put beside them."""

from __future__ import annotations

from typing import Any


def alias_bomb(levels: int = 7) -> str:
    """A "billion laughs" of about 500 bytes: ``levels`` lists of 9 aliases of the list before, the last
    one where a pool's vdev type goes (9**7 = 4.8 million strings once expanded)."""
    lines = ["apiVersion: nasd.io/v1alpha1", "kind: ZPool", "metadata:", "  name: tank", "  labels:",
             '    l0: &a0 "lol"']
    lines += [f"    l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    lines.append(f"spec: {{vdevs: [{{type: *a{levels}, devices: [/dev/null]}}]}}")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    """A ZDataset whose ``spec.properties`` is ``depth`` lists deep (on line 4), as YAML."""
    return ("apiVersion: nasd.io/v1alpha1\nkind: ZDataset\nmetadata: {name: deep}\n"
            "spec: {pool: tank, path: deep, properties: " + "[" * depth + "]" * depth + "}\n")


def dataset(name: str) -> dict[str, Any]:
    """A valid ZDataset on the pool ``nopool``, which no test declares: reconciling it runs nothing."""
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": name},
            "spec": {"pool": "nopool", "path": name}}
