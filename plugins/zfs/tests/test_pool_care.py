"""Pool care on real zfs-fuse pools of sparse files: scrubs on a schedule, and health that alerts (conditions that
say what to do, the Prometheus gauges of /metrics scraped from the real API socket).

Scheduled scrubs here run by a clock the test moves ahead of the real one (``ZFSPlugin(clock=...)``): the
pool's own scrub times, which zfs-fuse writes, stay real, as they would when the system clock moves."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nasd.models import parse_resource
from nasd.web.app import make_app
from nasd_testing.passes import converge, wait_for
from nasd_zfs.plugin import ZFSPlugin

pytestmark = pytest.mark.zfs
MiB = 1 << 20


class Ahead:
    """The real clock plus an offset the test moves forward. It starts just after a tick of the hourly schedule the
    tests use, so no tick comes by itself while a test runs (in the VM tier a test takes minutes)."""

    def __init__(self, align: float = 3600.0) -> None:
        now = time.time()
        self.offset = (now // align + 1) * align + 1 - now

    def __call__(self) -> float:
        return time.time() + self.offset

    def forward(self, seconds: float) -> None:
        self.offset += seconds


def zpool(*args: str) -> str:
    return subprocess.run(["zpool", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def scrubs_run(pool: str) -> int:
    """`zpool scrub` commands the pool's own history records."""
    return sum(1 for line in zpool("history", pool).splitlines() if line.split()[1:3] == ["zpool", "scrub"])


def pool_of(nasd: Any, name: str) -> Any:
    return nasd.reconciler.current[("ZPool", name)]


def cond(nasd: Any, name: str, type_: str) -> tuple[str, str, str]:
    c = pool_of(nasd, name).condition(type_)
    assert c is not None, f"no condition {type_}: {pool_of(nasd, name).status.conditions}"
    return c.status, c.reason, c.message


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def flush(pool: str) -> None:
    """Everything written is on the vdevs (a snapshot commits the open transaction group)."""
    os.sync()
    subprocess.run(["zfs", "snapshot", f"{pool}@flush"], check=True)
    subprocess.run(["zfs", "destroy", f"{pool}@flush"], check=True)


def corrupt_middle(path: str, start: int = 16 * MiB, end: int = -16 * MiB) -> None:
    """Garbage over the middle of a vdev file: the labels (the first and last 512K) are left alone."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(os.urandom(size + end - start if end < 0 else end - start))


async def scrape(nasd: Any, folder: Path) -> str:
    """GET /metrics through the real API (nasd.web) on a Unix socket, with the aiohttp client."""
    sock = folder / "api.sock"
    runner = web.AppRunner(make_app(nasd))
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as session:
            async with session.get("http://nasd/metrics") as resp:
                assert resp.status == 200
                return await resp.text()
    finally:
        await runner.cleanup()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` whose labels include ``labels`` (None: no such series)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def until_scrubbed(nasd: Any, name: str, count: int, timeout: float = 30.0) -> None:
    """Passes (as resyncs would run them) until the pool's own history counts ``count`` scrubs, nasd's
    `zpool scrub` has returned (zfs-fuse's returns when the scrub is done) and a pass shows it finished."""
    plugin = nasd.pm.get_plugin("zfs")
    deadline = time.monotonic() + timeout
    while True:
        await nasd.reconciler.run_pass(ignore_backoff=True)
        scan = pool_of(nasd, name).status.scan
        if scrubs_run(name) >= count and not plugin.scrubs.running and scan and scan.state == "finished":
            await nasd.reconciler.run_pass(ignore_backoff=True)
            return
        assert time.monotonic() < deadline, f"scrub {count} did not end: {pool_of(nasd, name).status}"
        await asyncio.sleep(0.2)


async def test_corruption_in_one_side_of_a_mirror_is_repaired_by_the_scheduled_scrub_and_shown_until_cleared(
        pool_env: Any, make_nasd: Any, tmp_path: Path) -> None:
    clock = Ahead()
    folder = pool_env.root / "manifests"
    doc = pool_env.pool_manifest(vdev_type="mirror", devices=2, scrub={"schedule": {"interval": "1h"}})
    pool_env.write_manifests(folder, doc)
    nasd = await make_nasd([folder], replace_plugins={"zfs": ZFSPlugin(clock=clock)})
    name = pool_env.pool_name()
    await converge(nasd)  # created, then scrubbed at once: it never was
    await until_scrubbed(nasd, name, 1)  # (OpenZFS's `zpool scrub` returns at once, zfs-fuse's when it is done)
    assert scrubs_run(name) == 1
    assert cond(nasd, name, "ScrubErrors")[:2] == ("False", "Clean")
    assert cond(nasd, name, "ScrubOverdue")[:2] == ("False", "Scrubbed")
    mountpoint = Path(pool_of(nasd, name).status.mountpoint)
    digest = write_random(mountpoint / "photos.bin", 40 * MiB)
    flush(name)
    bad = pool_env.vdev("tank-0")
    corrupt_middle(bad)

    # not due yet: nothing starts; the next tick of the hourly interval starts exactly one
    report = await nasd.reconciler.run_pass(ignore_backoff=True)
    assert not report.mutated and scrubs_run(name) == 1
    clock.forward(3600)
    t0 = time.monotonic()
    await until_scrubbed(nasd, name, 2)
    took = time.monotonic() - t0
    assert scrubs_run(name) == 2

    status, reason, message = cond(nasd, name, "DeviceErrors")
    assert (status, reason) == ("True", "ChecksumErrors")
    assert bad in message and "checksum errors" in message and "repaired by the last scrub" in message
    assert f"`zpool clear {name}`" in message and "spec.vdevs" in message
    status, reason, message = cond(nasd, name, "ScrubErrors")
    assert (status, reason) == ("True", "Repaired") and "no data was lost" in message
    assert cond(nasd, name, "DataErrors")[:2] == ("False", "NoDataErrors")
    assert cond(nasd, name, "Degraded")[:2] == ("False", "Healthy")
    st = pool_of(nasd, name).status
    device = next(d for d in st.devices if d.name == bad)
    assert device.checksum > 0 and device.vdev == "mirror-0"
    assert pool_env.daemon.kernel or "repaired" in (device.note or "")  # (zfs-fuse notes it beside the device)
    assert st.lastScrub.repairedBytes and st.lastScrub.errors == 0
    assert hashlib.sha256((mountpoint / "photos.bin").read_bytes()).hexdigest() == digest  # nothing lost

    text = await scrape(nasd, tmp_path)
    assert metric(text, "nasd_zpool_device_errors", pool=name, device=bad, type="checksum") == device.checksum
    assert metric(text, "nasd_zpool_device_errors", pool=name, device=pool_env.vdev("tank-1"), type="checksum") == 0
    assert metric(text, "nasd_zpool_scrub_last_repaired_bytes", pool=name) == st.lastScrub.repairedBytes
    assert metric(text, "nasd_zpool_alert", pool=name, condition="DeviceErrors", reason="ChecksumErrors") == 1
    assert metric(text, "nasd_zpool_scrub_in_progress", pool=name) == 0
    assert metric(text, "nasd_zpool_state", pool=name, state="ONLINE") == 1
    assert (metric(text, "nasd_zpool_scrub_next_timestamp_seconds", pool=name) or 0) > clock()
    assert "# TYPE nasd_zpool_device_errors gauge" in text

    # what the message says to do: `zpool clear`; the next scheduled scrub finds nothing and all clears
    zpool("clear", name)
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert cond(nasd, name, "DeviceErrors")[:2] == ("False", "NoErrors")
    clock.forward(3600)
    await until_scrubbed(nasd, name, 3)
    assert cond(nasd, name, "ScrubErrors")[:2] == ("False", "Clean")
    text = await scrape(nasd, tmp_path)
    assert metric(text, "nasd_zpool_device_errors", pool=name, device=bad, type="checksum") == 0
    assert metric(text, "nasd_zpool_alert", pool=name, condition="DeviceErrors") is None
    assert scrubs_run(name) == 3
    print(f"scheduled scrub of the corrupted mirror: found and repaired in {took:.1f}s")


async def test_a_pool_filled_past_the_thresholds_warns_then_is_critical_and_clears_when_space_is_freed(
        pool_env: Any, make_nasd: Any, tmp_path: Path) -> None:
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(size="128Mi", capacity={"warningPercent": 60,
                                                                                     "criticalPercent": 85}))
    nasd = await make_nasd([folder])
    name = pool_env.pool_name()
    await converge(nasd)
    assert cond(nasd, name, "CapacityHigh")[:2] == ("False", "CapacityOK")
    st = pool_of(nasd, name).status
    mountpoint = Path(st.mountpoint)

    async def fill_to(percent: float, file: str) -> float:
        st = pool_of(nasd, name).status
        used = st.size - st.free
        write_random(mountpoint / file, int(st.size * percent / 100) - used)
        flush(name)
        await nasd.reconciler.run_pass(ignore_backoff=True)
        st = pool_of(nasd, name).status
        return 100 * (st.size - st.free) / st.size

    now = await fill_to(70, "a.bin")
    status, reason, message = cond(nasd, name, "CapacityHigh")
    assert (status, reason) == ("True", "CapacityWarning"), (now, message)
    assert f"pool {name} is {now:.0f}% full" in message and "warns at 60%, critical at 85%" in message
    assert "old snapshots" in message and "add a vdev" in message
    now = await fill_to(90, "b.bin")
    status, reason, message = cond(nasd, name, "CapacityHigh")
    assert (status, reason) == ("True", "CapacityCritical"), (now, message)
    assert "No space left on device" in message
    assert pool_of(nasd, name).ready  # a warning, not a failure: shares on it go on
    text = await scrape(nasd, tmp_path)
    ratio = metric(text, "nasd_zpool_capacity_ratio", pool=name)
    assert ratio is not None and abs(ratio - now / 100) < 0.01
    assert metric(text, "nasd_zpool_capacity_critical_ratio", pool=name) == 0.85
    assert metric(text, "nasd_zpool_alert", pool=name, condition="CapacityHigh", reason="CapacityCritical") == 1

    (mountpoint / "a.bin").unlink()
    (mountpoint / "b.bin").unlink()
    flush(name)

    async def cleared() -> bool:
        await nasd.reconciler.run_pass(ignore_backoff=True)
        return cond(nasd, name, "CapacityHigh")[:2] == ("False", "CapacityOK")

    deadline = time.monotonic() + 20
    while not await cleared():  # (ZFS frees the blocks over the next transaction groups)
        assert time.monotonic() < deadline, cond(nasd, name, "CapacityHigh")
        await asyncio.sleep(0.5)


async def test_a_device_taken_offline_makes_the_pool_degraded_naming_it_and_online_again_heals(
        pool_env: Any, make_nasd: Any, tmp_path: Path) -> None:
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(vdev_type="mirror", devices=2))
    nasd = await make_nasd([folder])
    name = pool_env.pool_name()
    await converge(nasd)
    gone = pool_env.vdev("tank-1")
    zpool("offline", name, gone)
    await nasd.reconciler.run_pass(ignore_backoff=True)

    status, reason, message = cond(nasd, name, "Degraded")
    assert (status, reason) == ("True", "PoolDegraded")
    assert f"{gone} in mirror-0 is OFFLINE" in message and f"`zpool online {name} {gone}`" in message
    assert "name a new device in its place in spec.vdevs" in message and "one more failure" in message
    assert pool_of(nasd, name).ready  # degraded still serves: its datasets and shares go on
    assert pool_of(nasd, name).status.health == "DEGRADED"
    assert {d.name: d.state for d in pool_of(nasd, name).status.devices} == {pool_env.vdev("tank-0"): "ONLINE",
                                                                            gone: "OFFLINE"}
    text = await scrape(nasd, tmp_path)
    assert metric(text, "nasd_zpool_state", pool=name, state="DEGRADED") == 1
    assert metric(text, "nasd_zpool_state", pool=name, state="ONLINE") == 0
    assert metric(text, "nasd_zpool_device_state", pool=name, device=gone, state="OFFLINE") == 1
    assert metric(text, "nasd_zpool_alert", pool=name, condition="Degraded", reason="PoolDegraded") == 1

    zpool("online", name, gone)
    await wait_for(lambda: "DEGRADED" not in zpool("status", name), 10, "the device back")
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert cond(nasd, name, "Degraded")[:2] == ("False", "Healthy")
    assert pool_of(nasd, name).status.health == "ONLINE"


async def test_a_scrub_in_progress_is_shown_and_never_restarted_by_the_passes_during_it(
        pool_env: Any, make_nasd: Any) -> None:
    folder = pool_env.root / "manifests"
    doc = pool_env.pool_manifest(vdev_type="mirror", devices=2, size="1Gi",
                                 properties={"recordsize": "512", "compression": "off"})
    pool_env.write_manifests(folder, doc)
    nasd = await make_nasd([folder])
    name = pool_env.pool_name()
    await converge(nasd)
    write_random(Path(pool_of(nasd, name).status.mountpoint) / "many-small-blocks.bin", 48 * MiB)
    flush(name)  # (tiny records: a scrub of seconds on a small pool)

    scheduled = {**doc, "spec": {**doc["spec"], "scrub": {"schedule": {"cron": "0 3 * * 0"}}}}
    pool_env.write_manifests(folder, scheduled)
    nasd.feed.replace("manifests", [parse_resource(scheduled)])
    seen: list[tuple[str, float | None]] = []
    passes = 0
    t0 = time.monotonic()
    while True:  # passes back to back, as resyncs (and the scrub's own wake-ups) would run them
        await nasd.reconciler.run_pass(ignore_backoff=True)
        passes += 1
        scan = pool_of(nasd, name).status.scan
        if scan is not None and scan.kind == "scrub":
            seen.append((scan.state, scan.percentDone))
            if scan.state == "finished":
                break
        assert time.monotonic() - t0 < 60, seen
    running = [p for s, p in seen if s == "running"]
    assert running, f"the scrub was never seen running: {seen}"
    assert all(p is not None for p in running)
    assert scrubs_run(name) == 1  # never two, never restarted (zfs-fuse restarts a scrub on a second `zpool scrub`)
    await wait_for(lambda: not nasd.pm.get_plugin("zfs").scrubs.running, 10, "nasd's `zpool scrub` to return")
    mutating_scrubs = [s.argv for s in nasd.runner.spawns if s.mutating and s.argv[1:2] == ["scrub"]]
    assert len(mutating_scrubs) == 1
    assert cond(nasd, name, "ScrubOverdue")[:2] == ("False", "Scrubbed")
    print(f"a scrub of {time.monotonic() - t0:.1f}s seen running by {len(running)} of {passes} passes "
          f"({running[0]:.0f}% to {running[-1]:.0f}%); started once")


def data_blocks(pool: str, vdevs: str, inode: int, kernel: bool) -> list[tuple[int, int]]:
    """(offset in the vdev file, size) of each data block of object ``inode``, from zdb (the pool exported)."""
    root = pool + "/" if kernel else pool  # (OpenZFS's zdb reads the MOS for `pool`, the root dataset `pool/`)
    out = subprocess.run(["zdb", "-e", "-p", vdevs, "-ddddd", root, str(inode)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    found = re.findall(r"\bL0 0:([0-9a-f]+):([0-9a-f]+)\b", out)
    assert found, out
    return [(int(offset, 16) + 4 * MiB, int(size, 16)) for offset, size in found]  # (after the labels and boot area)


async def test_a_block_no_scrub_can_repair_names_its_file_and_heals_once_the_file_is_deleted_and_scrubbed(
        pool_env: Any, make_nasd: Any, tmp_path: Path) -> None:
    clock = Ahead()
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(scrub={"schedule": {"interval": "1h"}},
                                                            properties={"compression": "off"}))
    nasd = await make_nasd([folder], replace_plugins={"zfs": ZFSPlugin(clock=clock)})
    name = pool_env.pool_name()
    await converge(nasd)
    mountpoint = Path(pool_of(nasd, name).status.mountpoint)
    lost = mountpoint / "lost.bin"
    write_random(lost, 1 * MiB)
    kept = write_random(mountpoint / "kept.bin", 1 * MiB)
    flush(name)
    vdev = pool_env.vdev("tank-0")
    inode = os.stat(lost).st_ino
    zpool("export", name)  # (zdb reads an exported pool; no pass runs meanwhile)
    offset, size = data_blocks(name, os.path.dirname(vdev), inode, pool_env.daemon.kernel)[0]
    with open(vdev, "r+b") as f:  # a single device: the block has no other copy
        f.seek(offset + size // 4)
        f.write(os.urandom(size // 2))
    zpool("import", "-d", os.path.dirname(vdev), name)
    spawns = len(nasd.runner.spawns)
    clock.forward(3600)
    await until_scrubbed(nasd, name, 2)

    status, reason, message = cond(nasd, name, "DataErrors")
    assert (status, reason) == ("True", "PermanentErrors"), message
    assert f"in {lost} (" in message and "restore those files from a snapshot or a backup" in message
    assert "<metadata>" not in message
    assert cond(nasd, name, "ScrubErrors")[:2] == ("True", "Unrepaired")
    st = pool_of(nasd, name).status
    assert st.dataErrors == 1 and st.errorFiles == [str(lost)]
    listings = [s.argv for s in nasd.runner.spawns[spawns:] if s.argv[1:2] == ["status"] and "-v" in s.argv]
    assert listings and all(a[-1] == name for a in listings)  # `zpool status -v` only of the pool with errors
    assert pool_of(nasd, name).ready  # the rest of the pool is served
    assert hashlib.sha256((mountpoint / "kept.bin").read_bytes()).hexdigest() == kept
    text = await scrape(nasd, tmp_path)
    assert metric(text, "nasd_zpool_data_errors", pool=name) == 1
    assert metric(text, "nasd_zpool_scrub_last_errors", pool=name) == 1
    assert metric(text, "nasd_zpool_alert", pool=name, condition="DataErrors", reason="PermanentErrors") == 1

    # what the message says: delete (or restore) the file; the next scheduled scrub drops it from the list
    lost.unlink()
    flush(name)
    clock.forward(3600)
    await until_scrubbed(nasd, name, 3)
    zpool("clear", name)
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert cond(nasd, name, "DataErrors")[:2] == ("False", "NoDataErrors"), pool_of(nasd, name).status
    assert cond(nasd, name, "ScrubErrors")[:2] == ("False", "Clean")
    assert cond(nasd, name, "DeviceErrors")[:2] == ("False", "NoErrors")
