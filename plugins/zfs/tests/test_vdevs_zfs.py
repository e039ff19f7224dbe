"""Disks replaced, attached and added by editing a ZPool's spec.vdevs, on real zfs-fuse pools of sparse files:
what runs (exactly one command), what waits for a confirmation, what is refused with nothing run, and what the
user sees (the pool's conditions and status)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from nasd.models import parse_resource
from nasd_testing.passes import converge
from nasd_testing.serve import nasd as nasd_cli
from nasd_zfs import devices as devices_module
from nasd_zfs.vdevs import CONFIRM_ANNOTATION, PENDING_CONDITION

pytestmark = pytest.mark.zfs
#: OpenZFS's tunable that holds every scrub and resilver where it is (for its own test suite)
SUSPEND_SCANS = Path("/sys/module/zfs/parameters/zfs_scan_suspend_progress")

def zpool(*args: str, check: bool = True) -> str:
    return subprocess.run(["zpool", *args], capture_output=True, text=True, check=check, timeout=60).stdout


def devices(pool: str) -> list[str]:
    """The pool's data devices as `zpool status` lists them (with the groups: mirror-0, raidz1-0)."""
    lines = zpool("status", pool).split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("NAME"))
    out = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        out.append(ln.split()[0])
    return out


def mutating(nasd: Any, since: int = 0) -> list[list[str]]:
    """The mutating commands run since spawn ``since``, the program by its name."""
    return [[s.argv[0].rsplit("/", 1)[-1], *s.argv[1:]] for s in nasd.runner.spawns[since:] if s.mutating]


def condition(nasd: Any, pool: str, type_: str = "Ready") -> Any:
    return nasd.reconciler.current[("ZPool", pool)].condition(type_)


def declare(nasd: Any, folder: Path, pool_env: Any, *docs: dict[str, Any]) -> None:
    """The manifest folder edited (written, and read at once as the watcher would)."""
    pool_env.write_manifests(folder, *docs)
    nasd.feed.replace("manifests", [parse_resource(d) for d in docs])


def spec(doc: dict[str, Any], vdevs: list[dict[str, Any]], size: str = "256Mi", confirm: str | None = None,
         **files: str) -> dict[str, Any]:
    """``doc`` with other vdevs, each device a sparse file of ``size`` (or of the size ``files`` names)."""
    out = {**doc, "spec": {**doc["spec"], "vdevs": vdevs}}
    paths = [d for v in vdevs for d in v["devices"]]
    out["spec"]["files"] = {p: files.get(os.path.basename(p), size) for p in paths}
    if confirm is not None:
        out["metadata"] = {**doc["metadata"], "annotations": {CONFIRM_ANNOTATION: confirm}}
    return out


async def until_ready(nasd: Any, pool: str, timeout: float = 120.0) -> None:
    """Passes (as the resyncs would run them) until the pool is Ready: OpenZFS's replace and attach return at once
    and resilver in the background (zfs-fuse's return once the resilver is done), then ZFS detaches the old device."""
    deadline = time.monotonic() + timeout
    while True:
        await nasd.reconciler.run_pass(ignore_backoff=True)
        if condition(nasd, pool).status == "True":
            return
        assert time.monotonic() < deadline, f"pool {pool} not Ready after {timeout}s: {condition(nasd, pool)}"
        await asyncio.sleep(0.2)


def token(message: str) -> str:
    return message.split(f'{CONFIRM_ANNOTATION}: "')[1].split('"')[0]


async def start(pool_env: Any, make_nasd: Any, **manifest: Any) -> tuple[Any, Path, dict[str, Any], str]:
    folder = pool_env.root / "manifests"
    doc = pool_env.pool_manifest(**manifest)
    pool_env.write_manifests(folder, doc)
    nasd = await make_nasd([folder])
    await converge(nasd)
    assert condition(nasd, pool_env.pool_name()).status == "True"
    return nasd, folder, doc, pool_env.pool_name()


def write_data(mountpoint: Path, megabytes: int, name: str = "data.bin") -> str:
    block = hashlib.sha256(name.encode()).digest() * (1 << 15)  # 1 MiB that does not compress to nothing
    digest = hashlib.sha256()
    with open(mountpoint / name, "wb") as f:
        for i in range(megabytes):
            chunk = i.to_bytes(4, "big") + block[4:]
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- a failed device replaced -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["taken offline", "its file removed"])
async def test_a_failed_device_is_replaced_by_naming_its_replacement_and_the_pool_is_ready_after_the_resilver(
        pool_env, make_nasd, fault):
    nasd, folder, doc, pool = await start(pool_env, make_nasd, vdev_type="mirror", devices=2)
    a, b = doc["spec"]["vdevs"][0]["devices"]
    new = pool_env.vdev("tank-new")
    data = write_data(pool_env.mount_root / pool, 24)
    if fault == "taken offline":
        zpool("offline", pool, b)
    else:  # (zfs-fuse keeps the removed file open: the pool sees it gone once it is imported again, as at a boot)
        os.remove(b)
        zpool("export", pool)
    await converge(nasd)  # (the exported pool is imported again by nasd)
    status = nasd.reconciler.current[("ZPool", pool)].status
    assert status.health == "DEGRADED" and condition(nasd, pool, "Degraded").status == "True"
    assert condition(nasd, pool).status == "True"  # (a degraded pool still serves)

    declare(nasd, folder, pool_env, spec(doc, [{"type": "mirror", "devices": [a, new]}]))
    before = len(nasd.runner.spawns)
    started = time.monotonic()
    await nasd.reconciler.run_pass()
    assert mutating(nasd, before) == [["zpool", "replace", pool, b, new]]  # exactly that device
    ready = condition(nasd, pool)
    assert (ready.status, ready.reason) == ("False", "Resilvering")  # (not Ready before the resilver is done)
    assert f"zpool replace {pool} {b} {new}" in ready.message
    assert condition(nasd, pool, "Available").status == "True"  # (it serves meanwhile: its datasets go on)
    await until_ready(nasd, pool)
    seconds = time.monotonic() - started

    assert devices(pool) == [pool, "mirror-0", a, new]
    status = nasd.reconciler.current[("ZPool", pool)].status
    assert status.health == "ONLINE" and condition(nasd, pool).reason == "Ready"
    assert condition(nasd, pool, "Degraded").status == "False" and condition(nasd, pool, "Available") is None
    scan = getattr(status, "scan", None)  # (the health part of the plugin shows the last scan)
    assert scan is not None and scan.kind == "resilver" and scan.state == "finished", scan
    assert digest_of(pool_env.mount_root / pool / "data.bin") == data
    assert seconds < 20
    before = len(nasd.runner.spawns)
    report = await nasd.reconciler.run_pass()  # the same manifest again: nothing runs
    assert mutating(nasd, before) == [] and not report.mutated


async def test_a_resilver_in_progress_keeps_the_pool_not_ready_and_shows_how_far_it_is(pool_env, make_nasd):
    kernel = pool_env.daemon.kernel
    nasd, folder, doc, pool = await start(pool_env, make_nasd, vdev_type="mirror", devices=2, size="512Mi")
    a, b = doc["spec"]["vdevs"][0]["devices"]
    new = pool_env.vdev("tank-new")
    # (zfs-fuse resilvers ~200 MB/s here: 380 MB take about 2 s; OpenZFS's resilver is held where it is by its
    # own tunable zfs_scan_suspend_progress while the pass runs)
    write_data(pool_env.mount_root / pool, 48 if kernel else 380)
    zpool("offline", pool, b)
    subprocess.run(["truncate", "-s", "512M", new], check=True)
    dataset = pool_env.dataset_manifest("photos")
    declare(nasd, folder, pool_env, spec(doc, [{"type": "mirror", "devices": [a, new]}], size="512Mi"), dataset)
    if kernel:
        SUSPEND_SCANS.write_text("1")
    # a replace started by hand (zfs-fuse's own `zpool replace` waits for the resilver, so nasd sees its own
    # resilver only once it is done); the spec already names the new device
    by_hand = subprocess.Popen(["zpool", "replace", pool, b, new], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "resilver in progress" not in zpool("status", pool):
            assert time.monotonic() < deadline and (kernel or by_hand.poll() is None), "no resilver seen"
            time.sleep(0.02)
        before = len(nasd.runner.spawns)
        await nasd.reconciler.run_pass()
        ready = condition(nasd, pool)
        assert (ready.status, ready.reason) == ("False", "Resilvering"), ready
        assert f"replacing {b} (OFFLINE) with {new}" in ready.message and "% done" in ready.message
        assert [argv[:2] for argv in mutating(nasd, before)] == [["zfs", "create"]]  # nothing else is changed
        # ... but the pool serves: a dataset declared meanwhile is created at once
        assert condition(nasd, pool, "Available").status == "True"
        assert nasd.reconciler.current[("ZDataset", "photos")].ready
    finally:
        assert by_hand.wait(timeout=60) == 0
        if kernel:
            SUSPEND_SCANS.write_text("0")
    await until_ready(nasd, pool)
    assert condition(nasd, pool).reason == "Ready" and devices(pool) == [pool, "mirror-0", a, new]
    assert condition(nasd, pool, "Available") is None


# -- growing -----------------------------------------------------------------------------------------------


async def test_a_pool_grows_by_a_vdev_only_after_the_confirmation_its_condition_names(pool_env, make_nasd):
    nasd, folder, doc, pool = await start(pool_env, make_nasd)
    (a,) = doc["spec"]["vdevs"][0]["devices"]
    b = pool_env.vdev("tank-1")
    size = nasd.reconciler.current[("ZPool", pool)].status.size
    grown = spec(doc, [{"type": "stripe", "devices": [a, b]}])
    declare(nasd, folder, pool_env, grown)
    before = len(nasd.runner.spawns)
    await converge(nasd)
    assert mutating(nasd, before) == [] and not os.path.exists(b)  # nothing ran, no file was made
    held = condition(nasd, pool, PENDING_CONDITION)
    assert (held.status, held.reason) == ("True", "WaitingForConfirmation")
    assert f"`zpool add {pool} {b}`" in held.message
    # (zfs-fuse has no `zpool remove` for a top-level vdev; OpenZFS has, and it copies the vdev's data away)
    assert ("taken out again only by `zpool remove`" if pool_env.daemon.kernel else "cannot be taken out again") \
        in held.message
    assert f'annotate the ZPool {CONFIRM_ANNOTATION}: "' in held.message
    assert condition(nasd, pool).status == "True"  # (the pool serves as it is meanwhile)

    declare(nasd, folder, pool_env, spec(doc, [{"type": "stripe", "devices": [a, b]}], confirm=token(held.message)))
    before = len(nasd.runner.spawns)
    await converge(nasd)
    assert mutating(nasd, before) == [["zpool", "add", pool, b]]
    assert devices(pool) == [pool, a, b]
    assert condition(nasd, pool, PENDING_CONDITION) is None and condition(nasd, pool).reason == "Ready"
    assert nasd.reconciler.current[("ZPool", pool)].status.size > size * 1.5
    before = len(nasd.runner.spawns)
    await nasd.reconciler.run_pass()
    assert mutating(nasd, before) == []


async def test_a_device_that_waits_for_its_confirmation_is_read_once_and_again_only_once_it_changed(
        pool_env, make_nasd, monkeypatch):
    nasd, folder, doc, pool = await start(pool_env, make_nasd)
    (a,) = doc["spec"]["vdevs"][0]["devices"]
    b = pool_env.vdev("tank-1")
    subprocess.run(["truncate", "-s", "256M", b], check=True)  # (there already: nasd looks for data on it)
    reads: list[str] = []
    real = devices_module.file_holds_data
    monkeypatch.setattr(devices_module, "file_holds_data", lambda path: reads.append(path) or real(path))
    declare(nasd, folder, pool_env, spec(doc, [{"type": "stripe", "devices": [a, b]}]))
    for _ in range(4):
        await nasd.reconciler.run_pass(ignore_backoff=True)
    assert condition(nasd, pool, PENDING_CONDITION).reason == "WaitingForConfirmation"
    assert reads == [b]  # (once, not at every pass while it waits)
    with open(b, "r+b") as f:  # someone writes to it meanwhile: read again, and refused
        f.seek(1 << 20)
        f.write(b"not zero")
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert reads == [b, b]
    ready = condition(nasd, pool)
    assert (ready.status, ready.reason) == ("False", "DeviceHoldsData") and b in ready.message


async def test_a_device_added_to_a_single_disk_vdev_makes_it_a_mirror_by_attach(pool_env, make_nasd):
    nasd, folder, doc, pool = await start(pool_env, make_nasd)
    (a,) = doc["spec"]["vdevs"][0]["devices"]
    data = write_data(pool_env.mount_root / pool, 8)
    b = pool_env.vdev("tank-1")
    declare(nasd, folder, pool_env, spec(doc, [{"type": "mirror", "devices": [a, b]}]))
    before = len(nasd.runner.spawns)
    await until_ready(nasd, pool)
    assert mutating(nasd, before) == [["zpool", "attach", pool, a, b]]  # (no confirmation: it adds redundancy)
    assert devices(pool) == [pool, "mirror-0", a, b]
    assert condition(nasd, pool).reason == "Ready" and condition(nasd, pool, PENDING_CONDITION) is None
    # the new side holds the data: the old one taken offline, every byte still reads back
    zpool("offline", pool, a)
    assert digest_of(pool_env.mount_root / pool / "data.bin") == data
    zpool("online", pool, a)


# -- held: a healthy device's replacement -----------------------------------------------------------------


async def test_replacing_a_healthy_device_is_held_until_confirmed(pool_env, make_nasd):
    nasd, folder, doc, pool = await start(pool_env, make_nasd, vdev_type="mirror", devices=2)
    a, b = doc["spec"]["vdevs"][0]["devices"]
    new = pool_env.vdev("tank-new")
    declare(nasd, folder, pool_env, spec(doc, [{"type": "mirror", "devices": [a, new]}]))
    before = len(nasd.runner.spawns)
    await converge(nasd)
    held = condition(nasd, pool, PENDING_CONDITION)
    assert mutating(nasd, before) == [] and devices(pool) == [pool, "mirror-0", a, b]
    assert f"`zpool replace {pool} {b} {new}`" in held.message and f"{b} is healthy" in held.message

    confirmed = spec(doc, [{"type": "mirror", "devices": [a, new]}], confirm=token(held.message))
    declare(nasd, folder, pool_env, confirmed)
    before = len(nasd.runner.spawns)
    await until_ready(nasd, pool)
    assert mutating(nasd, before) == [["zpool", "replace", pool, b, new]]
    assert devices(pool) == [pool, "mirror-0", a, new] and condition(nasd, pool).reason == "Ready"
    assert condition(nasd, pool, PENDING_CONDITION) is None


# -- refused: what ZFS cannot do ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["a device removed from a raidz", "a top-level vdev removed",
                                  "a smaller replacement", "a mirror made a raidz"])
async def test_what_zfs_cannot_do_is_refused_with_a_reason_and_nothing_runs(pool_env, make_nasd, case):
    layout = {"a device removed from a raidz": dict(vdev_type="raidz1", devices=3),
              "a top-level vdev removed": dict(devices=2),
              "a smaller replacement": dict(vdev_type="mirror", devices=2),
              "a mirror made a raidz": dict(vdev_type="mirror", devices=2)}[case]
    nasd, folder, doc, pool = await start(pool_env, make_nasd, **layout)
    old = doc["spec"]["vdevs"][0]["devices"]
    new = pool_env.vdev("tank-new")
    edited, reason, says = {
        "a device removed from a raidz": (
            spec(doc, [{"type": "raidz1", "devices": old[:2]}]), "RaidzCannotShrink",
            "ZFS cannot remove a device from a raidz vdev"),
        "a top-level vdev removed": (
            spec(doc, [{"type": "stripe", "devices": old[:1]}]), "VdevCannotBeRemoved",
            "cannot remove a top-level vdev"),
        "a smaller replacement": (
            spec(doc, [{"type": "mirror", "devices": [old[0], new]}], **{"tank-new.img": "128Mi"}), "DeviceTooSmall",
            f"{new} (128Mi) is smaller than the devices of mirror-0"),
        "a mirror made a raidz": (
            spec(doc, [{"type": "raidz1", "devices": [*old, new]}]), "VdevTypeChange",
            "ZFS cannot change a vdev's type"),
    }[case]
    if case == "a top-level vdev removed" and pool_env.daemon.kernel:
        pytest.skip("OpenZFS can remove a top-level vdev: there it is held for a confirmation (the test below)")
    layout_before = devices(pool)
    declare(nasd, folder, pool_env, edited)
    before = len(nasd.runner.spawns)
    await converge(nasd)
    ready = condition(nasd, pool)
    assert (ready.status, ready.reason) == ("False", reason)
    assert says in ready.message and ready.message.endswith("Nothing was run")
    assert mutating(nasd, before) == [] and not os.path.exists(new)
    assert devices(pool) == layout_before


async def test_where_zfs_can_remove_a_top_level_vdev_it_is_removed_only_after_the_confirmation(pool_env, make_nasd):
    if not pool_env.daemon.kernel:
        pytest.skip("zfs-fuse has no `zpool remove` for a top-level vdev: refused there (the test above)")
    # (OpenZFS removes a vdev only when the others have room for all of it, slop space kept)
    nasd, folder, doc, pool = await start(pool_env, make_nasd, devices=2, size="1Gi")
    a, b = doc["spec"]["vdevs"][0]["devices"]
    data = write_data(pool_env.mount_root / pool, 24)
    shrunk = spec(doc, [{"type": "stripe", "devices": [a]}], size="1Gi")
    declare(nasd, folder, pool_env, shrunk)
    before = len(nasd.runner.spawns)
    await converge(nasd)
    held = condition(nasd, pool, PENDING_CONDITION)
    assert mutating(nasd, before) == [] and devices(pool) == [pool, a, b]
    assert f"`zpool remove {pool} {b}`" in held.message and "copies its data onto the other vdevs" in held.message
    assert condition(nasd, pool).status == "True"  # (it serves as it is meanwhile)

    declare(nasd, folder, pool_env, spec(doc, [{"type": "stripe", "devices": [a]}], size="1Gi",
                                         confirm=token(held.message)))
    before = len(nasd.runner.spawns)
    await until_ready(nasd, pool)
    assert mutating(nasd, before) == [["zpool", "remove", pool, b]]
    assert devices(pool) == [pool, a] and condition(nasd, pool, PENDING_CONDITION) is None
    assert digest_of(pool_env.mount_root / pool / "data.bin") == data  # (its data was copied onto a)
    before = len(nasd.runner.spawns)
    report = await nasd.reconciler.run_pass()
    assert mutating(nasd, before) == [] and not report.mutated


# -- nasd plan ---------------------------------------------------------------------------------------------


def reconcile_until_ready(folder: Path, config: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (done := nasd_cli("reconcile", "-f", folder, "--config", config)).returncode != 0:
        assert time.monotonic() < deadline and "Resilvering" in done.stdout, done.stdout + done.stderr
        time.sleep(0.5)


async def test_nasd_plan_shows_the_replace_and_the_confirmed_add_before_anything_runs(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    config = pool_env.write_config()
    doc = pool_env.pool_manifest(vdev_type="mirror", devices=2)
    pool = pool_env.pool_name()
    a, b = doc["spec"]["vdevs"][0]["devices"]
    c, d, new = pool_env.vdev("tank-c"), pool_env.vdev("tank-d"), pool_env.vdev("tank-new")
    pool_env.write_manifests(folder, doc)
    assert nasd_cli("reconcile", "-f", folder, "--config", config).returncode == 0
    zpool("offline", pool, b)
    pool_env.write_manifests(folder, spec(doc, [{"type": "mirror", "devices": [a, new]}]))

    planned = nasd_cli("plan", "-f", folder, "--config", config)
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert f"# create sparse file {new} (268435456 bytes)" in lines
    assert f"zpool replace {pool} {b} {new}" in lines
    assert devices(pool) == [pool, "mirror-0", a, b] and not os.path.exists(new)  # nothing ran

    reconcile_until_ready(folder, config)  # (OpenZFS resilvers in the background: Ready once it is done)
    assert devices(pool) == [pool, "mirror-0", a, new]
    grown = [{"type": "mirror", "devices": [a, new]}, {"type": "mirror", "devices": [c, d]}]
    pool_env.write_manifests(folder, spec(doc, grown))
    held = nasd_cli("plan", "-f", folder, "--config", config).stdout.splitlines()
    assert f"zpool add {pool} mirror {c} {d}" not in held  # (held: it would not run) but shown, with why it waits
    waits = next(ln for ln in held if ln.startswith(f"# ZPool/{pool} waits for a confirmation: "))
    assert f"`zpool add {pool} mirror {c} {d}`" in waits and CONFIRM_ANNOTATION in waits
    assert held[-1] == "# nothing runs: the changes above wait for a confirmation"
    reconciled = nasd_cli("reconcile", "-f", folder, "--config", config, "-o", "json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr  # (Ready: it serves as it is)
    conditions = json.loads(reconciled.stdout)["status"]["conditions"]
    message = next(c["message"] for c in conditions if c["type"] == PENDING_CONDITION)
    assert f"`zpool add {pool} mirror {c} {d}`" in message and token(message) == token(waits)
    pool_env.write_manifests(folder, spec(doc, grown, confirm=token(message)))
    planned = nasd_cli("plan", "-f", folder, "--config", config)
    lines = planned.stdout.splitlines()
    assert f"zpool add {pool} mirror {c} {d}" in lines, planned.stdout
    assert f"# create sparse file {c} (268435456 bytes)" in lines
    assert devices(pool) == [pool, "mirror-0", a, new] and not os.path.exists(c)
