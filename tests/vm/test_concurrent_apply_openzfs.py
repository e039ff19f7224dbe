"""On the kernel's OpenZFS 2.1 (the VM tier) sibling datasets are created side by side, ``applyConcurrency`` at
a time (OpenZFS groups concurrent changes into shared transaction groups; zfs-fuse's commands stay serial, see
tests/test_concurrent_apply.py), each still with one `zfs create` and a parent before its child. A wrapper in
front of the real `zfs` logs when each create starts and ends."""

from __future__ import annotations

import shutil
from pathlib import Path

from vmhelpers import requires_openzfs

from nasd_testing.passes import converge

SIBLINGS = [f"s{i}" for i in range(8)]


def zfs_wrapper(root: Path) -> tuple[Path, Path]:
    real = shutil.which("zfs") or "/usr/sbin/zfs"
    log = root / "creates.log"
    wrapper = root / "zfs-logged"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" != create ]; then exec {real} "$@"; fi
for name; do :; done
echo "start $name $(date +%s%N)" >> {log}
{real} "$@"; rc=$?
echo "end $name $(date +%s%N)" >> {log}
exit $rc
""")
    wrapper.chmod(0o755)
    return wrapper, log


def spans(log: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        what, name, at = line.split()
        out.setdefault(name.split("/", 1)[1], [0, 0])[0 if what == "start" else 1] = int(at)
    return {k: (v[0], v[1]) for k, v in out.items()}


def most_at_once(found: dict[str, tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in found.values()] + [(e, -1) for _, e in found.values()])
    running = top = 0
    for _, step in events:
        running += step
        top = max(top, running)
    return top


async def test_sibling_datasets_on_openzfs_are_created_concurrently_and_a_parent_before_its_child(
        pool_env, make_nasd):
    requires_openzfs()
    wrapper, log = zfs_wrapper(pool_env.root)
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             *[pool_env.dataset_manifest(n, properties={"atime": "off"}) for n in SIBLINGS],
                             pool_env.dataset_manifest("s0-raw", path="s0/raw"))
    nasd = await make_nasd([folder], applyConcurrency=4, programs={"zfs": str(wrapper)})
    assert nasd.pm.get_plugin("zfs").dialect.name == "openzfs"
    assert "zfs" not in nasd.runner.bounds  # no bound of ZFS's own: applyConcurrency rules
    await converge(nasd)
    found = spans(log)
    assert sorted(found) == sorted(SIBLINGS + ["s0/raw"])
    assert 2 <= most_at_once(found) <= 4, found
    assert found["s0/raw"][0] >= found["s0"][1]
    for name in SIBLINGS + ["s0-raw"]:
        assert nasd.reconciler.current[("ZDataset", name)].ready, name
    creates = [s.argv for s in nasd.runner.spawns if s.mutating and s.argv[1:2] == ["create"]]
    assert len(creates) == 1 + len(SIBLINGS) + 1  # the pool, each dataset once; no `zfs set`
    assert not [s for s in nasd.runner.spawns if s.mutating and s.argv[1:2] == ["set"]]
