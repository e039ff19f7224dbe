"""The manifests in examples/ (what `make demo` applies) are valid and complete."""

from __future__ import annotations

from pathlib import Path

from nasd.manifests import load_paths

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_examples_parse_and_every_dependency_is_declared_in_them():
    resources = load_paths([EXAMPLES])
    keys = {r.key for r in resources}
    kinds = {r.kind for r in resources}
    assert {"ZPool", "ZDataset", "NASDirectory", "NASUser", "NASShare"} <= kinds
    missing = [(r.key, (kind, name)) for r in resources for kind, name, _ in r.dependencies()
               if (kind, name) not in keys]
    assert missing == []
