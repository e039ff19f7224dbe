"""The ZFS side failing in the middle of a pass, on the real zfs-fuse: its daemon killed, `zfs` exiting
non-zero on a mutating verb, a dataset busy. Each test shows what the user sees, that nothing written
before is lost or made again, and that nasd heals by itself once the fault is gone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from nasd_testing.passes import converge, wait_for
from nasd_testing.serve import Server, poll, serving


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=True).stdout


def ready_conditions(server: Server, kind: str) -> dict[str, dict[str, Any]]:
    """name -> the Ready condition of every object of ``kind`` the running daemon reports."""
    result = server.cli("get", kind, "-o", "json")
    assert result.returncode == 0, result.stderr
    out = {}
    for item in json.loads(result.stdout)["items"]:
        conds = {c["type"]: c for c in item.get("status", {}).get("conditions", [])}
        out[item["metadata"]["name"]] = conds.get("Ready", {})
    return out


def log_lines(server: Server) -> list[dict[str, Any]]:
    out = []
    for line in server.output().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"message": line})
    return out


def ready(nasd: Any, kind: str, name: str) -> tuple[str, str, str]:
    c = nasd.reconciler.current[(kind, name)].condition("Ready")
    return (c.status, c.reason, c.message)



def test_zfs_fuse_killed_mid_pass_is_reported_loses_nothing_and_nasd_converges_once_it_is_back(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    datasets = [pool_env.dataset_manifest(f"d{i}") for i in range(8)]
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("keep"))
    try:
        with serving(pool_env, tmp_path, maxBackoffSeconds=4) as start:
            server = start(folder)
            poll(lambda: server.ready("ZDataset", "keep"), timeout=30, what="keep Ready")
            keep = pool_env.mount_root / pool / "keep"
            with open(keep / "precious.txt", "w") as f:  # (synced: what a crash of ZFS itself may lose is not ours)
                f.write("written before the fault\n")
                f.flush()
                os.fsync(f.fileno())
            guid = zfs("get", "-H", "-o", "value", "guid", f"{pool}/keep").strip()

            # more datasets: zfs-fuse dies while nasd is creating them
            pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("keep"), *datasets)
            poll(lambda: f"{pool}/d" in zfs("list", "-H", "-o", "name", "-r", pool), timeout=20, interval=0.01,
                 what="the first new dataset")
            pool_env.daemon.kill()
            killed = time.monotonic()

            seen: list[Any] = []

            def all_report_zfs_down() -> dict[str, dict[str, Any]] | None:
                conds = {**ready_conditions(server, "ZPool"), **ready_conditions(server, "ZDataset")}
                seen[:] = [{n: (c.get("reason"), c.get("message", "")[:150]) for n, c in conds.items()}]
                # the pool says why; its datasets wait for it, naming the same cause
                return conds if len(conds) == 10 and conds[pool].get("reason") == "ZFSNotRunning" and all(
                    c.get("status") == "False" and "ZFSNotRunning: ZFS is not reachable" in c.get("message", "")
                    for n, c in conds.items() if n != pool) else None

            try:
                conds = poll(all_report_zfs_down, timeout=20, interval=0.3, what="every resource to say ZFS is down")
            except AssertionError as e:
                raise AssertionError(f"{e}; last seen: {seen}\n{server.output()[-3000:]}") from None
            reported = time.monotonic() - killed
            message = conds[pool]["message"]
            assert conds[pool]["status"] == "False" and conds["keep"]["reason"] == "PoolNotReady"
            assert "ZFS is not reachable" in message and "zfs-fuse daemon is running" in message
            assert "start the ZFS daemon" in message and "converges by itself" in message
            time.sleep(2)  # down for a while: nasd keeps retrying, changes nothing, never crashes
            assert server.proc.poll() is None

            pool_env.daemon.restart()
            back = time.monotonic()

            def all_ready() -> bool:
                conds = {**ready_conditions(server, "ZPool"), **ready_conditions(server, "ZDataset")}
                return len(conds) == 10 and all(c.get("status") == "True" for c in conds.values())

            try:
                poll(all_ready, timeout=30, interval=0.2, what="every resource Ready again")
            except AssertionError as e:
                conds = {**ready_conditions(server, "ZPool"), **ready_conditions(server, "ZDataset")}
                raise AssertionError(f"{e}: {conds}\n{server.output()[-4000:]}") from None
            healed = time.monotonic() - back
            # nothing lost, nothing made again: the same dataset, its file, every mount alive
            assert (keep / "precious.txt").read_text() == "written before the fault\n"
            assert zfs("get", "-H", "-o", "value", "guid", f"{pool}/keep").strip() == guid
            for i in range(8):
                assert os.path.ismount(pool_env.mount_root / pool / f"d{i}")
                os.listdir(pool_env.mount_root / pool / f"d{i}")  # (a dead mount raises ENOTCONN)
            lines = log_lines(server)
            applied = [ln["message"] for ln in lines if str(ln.get("message", "")).startswith("apply:")]
            assert len([a for a in applied if "zpool create" in a]) == 1
            assert not [a for a in applied if "destroy" in a or "import" in a]
            assert not [ln for ln in lines if "Traceback" in json.dumps(ln)]
            print(f"\nzfs-fuse killed: all resources said ZFSNotRunning after {reported:.1f}s; "
                  f"Ready again {healed:.1f}s after zfs-fuse was back; message: {message}")
    finally:
        pool_env.daemon.ensure_running(pool_env.root)


def _failing_zfs(tmp_path: Path, flag: Path) -> Path:
    """A `zfs` that fails `create` and `set` on the datasets named (one a line) in ``flag`` while it exists."""
    real = shutil.which("zfs")
    wrapper = tmp_path / "zfs-wrapper"
    wrapper.write_text(f"""#!/bin/sh
if [ -e {flag} ] && {{ [ "$1" = create ] || [ "$1" = set ]; }}; then
    for last in "$@"; do :; done
    if grep -qxF -- "$last" {flag}; then
        echo "cannot $1 '$last': I/O error (injected by the test)" >&2
        exit 1
    fi
fi
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    return wrapper


async def test_zfs_failing_on_create_and_set_names_its_message_leaves_the_others_alone_and_heals(
        pool_env, make_nasd, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    flag = tmp_path / "fail-these"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("good"),
                             pool_env.dataset_manifest("steady"))
    nasd = await make_nasd([folder], watch=True, programs={"zfs": str(_failing_zfs(tmp_path, flag))},
                           maxBackoffSeconds=2, manifestPollSeconds=0.1)
    await converge(nasd)
    (pool_env.mount_root / pool / "good" / "file").write_text("kept\n")
    flag.write_text(f"{pool}/new\n{pool}/good\n")
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("good", properties={"atime": "off", "compression": "on"}),
                             pool_env.dataset_manifest("steady"), pool_env.dataset_manifest("new"),
                             pool_env.dataset_manifest("other"))
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        keys = [("ZDataset", n) for n in ("good", "new", "other", "steady")]
        await wait_for(lambda: all(k in nasd.reconciler.current for k in keys)
                       and ready(nasd, "ZDataset", "new")[1] == "CommandFailed"
                       and ready(nasd, "ZDataset", "good")[1] == "CommandFailed", 20, "the failures reported")
        status, reason, message = ready(nasd, "ZDataset", "new")
        assert status == "False" and f"cannot create '{pool}/new': I/O error (injected by the test)" in message
        assert f"cannot set '{pool}/good': I/O error" in ready(nasd, "ZDataset", "good")[2]
        # the others are not affected
        assert ready(nasd, "ZDataset", "other")[:2] == ("True", "Ready")
        assert ready(nasd, "ZDataset", "steady")[:2] == ("True", "Ready")
        assert ready(nasd, "ZPool", pool)[:2] == ("True", "Ready")
        # nothing half-applied: the failed dataset is not there, the failed properties are not set
        assert f"{pool}/new\n" not in zfs("list", "-H", "-o", "name", "-r", pool)
        assert pool_env.zfs_get(f"{pool}/good", "atime", "compression") == {"atime": "on", "compression": "off"}

        flag.unlink()
        healed = await wait_for(lambda: all(ready(nasd, *k)[0] == "True" for k in keys), 15, "all Ready again")
        assert pool_env.zfs_get(f"{pool}/good", "atime", "compression") == {"atime": "off", "compression": "on"}
        assert pool_env.zfs_get(f"{pool}/new", "nasd.io:managed") == {"nasd.io:managed": "true"}
        assert (pool_env.mount_root / pool / "good" / "file").read_text() == "kept\n"
        print(f"\nzfs failing: {reason}: {message!r}; Ready {healed:.1f}s after the fault was gone")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_dataset_busy_for_real_is_retried_then_reported_then_heals_when_it_is_let_go(
        pool_env, make_nasd, tmp_path):
    """A process with its working folder in a dataset: zfs-fuse cannot unmount it to move its mountpoint
    ("umount: ...: target is busy"). nasd retries at once, then says Busy and what to do, with backoff."""
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    old = pool_env.mount_root / pool / "media"
    new = pool_env.mount_root / pool / "moved" / "media"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"))
    nasd = await make_nasd([folder], watch=True, maxBackoffSeconds=1, manifestPollSeconds=0.1)
    nasd.runner.busy_retries, nasd.runner.busy_delay = 2, 0.05  # (the default, 5 from 0.15 s, takes 4.6 s)
    await converge(nasd)
    (old / "film.mkv").write_text("frames\n")
    holder = subprocess.Popen(["sleep", "60"], cwd=old)
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        pool_env.write_manifests(folder, pool_env.pool_manifest(),
                                 pool_env.dataset_manifest("media", mountpoint=str(new)))
        await wait_for(lambda: ready(nasd, "ZDataset", "media")[1] == "Busy", 20, "Busy reported")
        status, reason, message = ready(nasd, "ZDataset", "media")
        assert status == "False" and "target is busy" in message and "fuser -vm" in message
        sets = [s for s in nasd.runner.spawns if s.mutating and s.argv[1:2] == ["set"]]
        assert len(sets) >= 3  # the first try and two retries at once
        # nothing half-applied: still mounted where it was, with its data
        assert pool_env.zfs_get(f"{pool}/media", "mountpoint") == {"mountpoint": str(old)}
        assert (old / "film.mkv").read_text() == "frames\n"
        assert ready(nasd, "ZPool", pool)[0] == "True"

        holder.kill()
        holder.wait()
        gone = time.monotonic()
        await wait_for(lambda: ready(nasd, "ZDataset", "media")[0] == "True", 20, "Ready again")
        healed = time.monotonic() - gone
        assert pool_env.zfs_get(f"{pool}/media", "mountpoint") == {"mountpoint": str(new)}
        assert (new / "film.mkv").read_text() == "frames\n"
        print(f"\ndataset busy: {reason}: {message!r}; Ready {healed:.1f}s after the holder let go")
    finally:
        holder.kill()
        holder.wait()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
