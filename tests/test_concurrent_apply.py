"""Independent resources of one group are applied concurrently, within the daemon's ``applyConcurrency`` and the
bound a plugin puts on its programs, on the real zfs-fuse: there its changing commands stay one at a time (a
four-way loop of `zfs create` can hang it), a parent is still made before its child, and one failing sibling
leaves the others Ready with their own conditions.

A wrapper in front of the real `zfs` logs when each `zfs create` arrives and ends (after a pause that widens the
window in which two could overlap). Where a test lets nasd run creates side by side, the wrapper passes them to
zfs-fuse one at a time (flock), so what is measured is nasd's scheduling and zfs-fuse is never put at risk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from nasd.sources.manifests import ManifestFolder
from nasd_testing.passes import converge

PROPS = {"compression": "gzip-1", "atime": "off"}
SIBLINGS = ["s1", "s2", "s3", "s4", "s5", "s6"]


def zfs_wrapper(root: Path) -> tuple[Path, Path, Path]:
    """(wrapper, log, folder of failures: a file named as a dataset's last path element makes its create fail)."""
    real = shutil.which("zfs") or "/usr/sbin/zfs"
    log, fail, lock = root / "creates.log", root / "fail", root / "zfs.lock"
    fail.mkdir(exist_ok=True)
    wrapper = root / "zfs-logged"
    wrapper.write_text(f"""#!/bin/sh
case "$1" in create|destroy) ;; *) exec {real} "$@";; esac
for name; do :; done
if [ -e "{fail}/${{name##*/}}" ]; then echo "cannot $1 '$name': I/O error (injected)" >&2; exit 1; fi
echo "start $1 $name $(date +%s%N)" >> {log}
sleep 0.3
flock {lock} {real} "$@"; rc=$?
echo "end $1 $name $(date +%s%N)" >> {log}
exit $rc
""")
    wrapper.chmod(0o755)
    return wrapper, log, fail


def spans(log: Path, verb: str = "create") -> dict[str, tuple[int, int]]:
    """Dataset -> (start, end) of its `zfs create` (or ``verb``), in nanoseconds."""
    out: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        what, command, name, at = line.split()
        if command == verb:
            out.setdefault(name.split("/", 1)[1], [0, 0])[0 if what == "start" else 1] = int(at)
    return {k: (v[0], v[1]) for k, v in out.items()}


def most_at_once(found: dict[str, tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in found.values()] + [(e, -1) for _, e in found.values()])
    running = top = 0
    for _, step in events:
        running += step
        top = max(top, running)
    return top


def ready(nasd, name: str) -> tuple[str, str, str]:
    c = nasd.reconciler.current[("ZDataset", name)].condition("Ready")
    return (c.status, c.reason, c.message)


async def start(pool_env, make_nasd, concurrency: int, *docs):
    wrapper, log, fail = zfs_wrapper(pool_env.root)
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), *docs)
    nasd = await make_nasd([folder], applyConcurrency=concurrency, programs={"zfs": str(wrapper)})
    return nasd, log, fail


async def test_sibling_datasets_on_zfs_fuse_are_created_one_at_a_time_and_a_parent_before_its_child(
        pool_env, make_nasd):
    docs = [pool_env.dataset_manifest(n, properties=PROPS) for n in SIBLINGS]
    docs.append(pool_env.dataset_manifest("s1-raw", path="s1/raw"))
    nasd, log, _ = await start(pool_env, make_nasd, 8, *docs)
    assert nasd.pm.get_plugin("zfs").dialect.name == "zfs-fuse"
    assert nasd.runner.bounds["zfs"].limit == 1 and nasd.runner.bounds["zpool"] is nasd.runner.bounds["zfs"]
    await converge(nasd)
    found = spans(log)
    assert sorted(found) == sorted(SIBLINGS + ["s1/raw"])
    assert most_at_once(found) == 1  # applyConcurrency 8, and still never two creates at once on zfs-fuse
    assert found["s1/raw"][0] >= found["s1"][1]
    for name in SIBLINGS + ["s1-raw"]:
        assert ready(nasd, name)[:2] == ("True", "Ready"), name
    mutating = [s.argv[1] for s in nasd.runner.spawns if s.mutating and s.argv[0].endswith("zfs-logged")]
    assert mutating == ["create"] * 7  # one create each, no `zfs set`


async def test_siblings_run_as_many_at_once_as_apply_concurrency_allows(pool_env, make_nasd):
    nasd, log, _ = await start(pool_env, make_nasd, 3, *[pool_env.dataset_manifest(n) for n in SIBLINGS])
    nasd.runner.bound(("zfs", "zpool"), 8)  # as on a dialect that allows it (the wrapper keeps zfs-fuse serial)
    await converge(nasd)
    found = spans(log)
    assert sorted(found) == SIBLINGS and most_at_once(found) == 3
    assert all(ready(nasd, n)[:2] == ("True", "Ready") for n in SIBLINGS)


async def test_a_programs_bound_holds_whatever_apply_concurrency_is(pool_env, make_nasd):
    nasd, log, _ = await start(pool_env, make_nasd, 8, *[pool_env.dataset_manifest(n) for n in SIBLINGS])
    nasd.runner.bound(("zfs", "zpool"), 2)
    await converge(nasd)
    found = spans(log)
    assert sorted(found) == SIBLINGS and most_at_once(found) == 2


async def test_one_sibling_failing_leaves_the_others_ready_with_their_own_conditions_and_it_heals(
        pool_env, make_nasd):
    docs = [pool_env.dataset_manifest(n, properties=PROPS) for n in SIBLINGS]
    nasd, log, fail = await start(pool_env, make_nasd, 4, *docs)
    nasd.runner.bound(("zfs", "zpool"), 4)
    (fail / "s3").touch()
    report = await nasd.reconciler.run_pass()  # the pool, then the datasets four at a time
    assert most_at_once(spans(log)) > 1  # s3 failed among others running
    status, reason, message = ready(nasd, "s3")
    assert (status, reason) == ("False", "CommandFailed")
    assert "cannot create" in message and "I/O error (injected)" in message
    pool = pool_env.pool_name()
    for name in SIBLINGS:
        if name == "s3":
            continue
        status, reason, message = ready(nasd, name)
        assert (status, reason) == ("True", "Ready"), name
        assert message.startswith("applied: ") and f"{pool}/{name}" in message and f"{pool}/s3" not in message
        assert pool_env.zfs_get(f"{pool}/{name}", "compression")["compression"] == "gzip-1"
    assert [o.key[1] for o in report.outcomes if not o.ready] == ["s3"]
    # the fault gone: s3 is made by the next passes, and nothing else is touched again
    (fail / "s3").unlink()
    before = len(nasd.runner.spawns)
    await converge(nasd)
    again = [s.argv for s in nasd.runner.spawns[before:] if s.mutating]
    assert again == [a for a in again if a[-1] == f"{pool}/s3"] and len(again) == 1
    assert ready(nasd, "s3")[:2] == ("True", "Ready")
    assert pool_env.zfs_get(f"{pool}/s3", "compression")["compression"] == "gzip-1"


async def test_deleted_siblings_are_destroyed_concurrently_and_a_child_before_its_parent(pool_env, make_nasd):
    docs = [pool_env.dataset_manifest(n, deletionPolicy="Destroy") for n in SIBLINGS]
    docs.append(pool_env.dataset_manifest("s1-raw", path="s1/raw", deletionPolicy="Destroy"))
    nasd, log, _ = await start(pool_env, make_nasd, 3, *docs)
    nasd.runner.bound(("zfs", "zpool"), 8)  # as on a dialect that allows it (the wrapper keeps zfs-fuse serial)
    await converge(nasd)
    pool_env.write_manifests(pool_env.root / "manifests", pool_env.pool_manifest(), docs[5])
    source = ManifestFolder([pool_env.root / "manifests"])
    source.scan()
    source.publish(nasd.feed)
    await converge(nasd)
    found = spans(log, "destroy")
    assert sorted(found) == sorted(SIBLINGS[:-1] + ["s1/raw"]), found
    assert found["s1"][0] >= found["s1/raw"][1]  # the child first
    assert most_at_once(found) == 3
    pool = pool_env.pool_name()
    assert subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], capture_output=True, text=True,
                          check=True).stdout.split() == [pool, f"{pool}/s6"]
    assert sorted(k[1] for k in nasd.reconciler.current if k[0] == "ZDataset") == ["s6"]


async def test_account_programs_are_bounded_to_one_at_a_time_by_default():
    from nasd.runner import ACCOUNT_PROGRAMS, Runner
    runner = Runner()
    gates = {id(runner.bounds[p]) for p in ACCOUNT_PROGRAMS}
    assert len(gates) == 1 and runner.bounds["useradd"].limit == 1 and not runner.bounds["useradd"].applies(False)
