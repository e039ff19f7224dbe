"""No space left (ENOSPC), for real: a client filling a dataset of the real pool while nasd reconciles, and
nasd writing its own state on a full file system (a tiny tmpfs). What the user sees, that nothing written
before is lost, and that both heal by themselves once there is room again."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from nasd_testing.passes import converge, wait_for
from nasd_testing.serve import poll, serving


def condition(nasd: Any, kind: str, name: str, type_: str = "Ready") -> tuple[str, str, str] | None:
    c = nasd.reconciler.current[(kind, name)].condition(type_)
    return (c.status, c.reason, c.message) if c else None


def fill(path: Path) -> int:
    """Write ``path`` until the file system says ENOSPC; the bytes written."""
    written = 0
    try:
        with open(path, "wb", buffering=0) as f:  # (each write reaches the file system, or fails)
            while True:
                written += f.write(b"\xa5" * (1 << 16))
    except OSError as e:
        assert e.errno == 28, e  # ENOSPC
    return written



async def test_a_client_filling_the_pool_is_told_pool_full_keeps_its_data_and_it_heals_once_space_is_freed(
        pool_env, make_nasd, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(size="128Mi"), pool_env.dataset_manifest("media"))
    nasd = await make_nasd([folder], watch=True, resyncSeconds=0.5, maxBackoffSeconds=1, manifestPollSeconds=0.1)
    await converge(nasd)
    media = pool_env.mount_root / pool / "media"
    (media / "before.txt").write_text("written before the pool filled up\n")
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        written = await asyncio.to_thread(fill, media / "big.bin")  # while nasd keeps reconciling
        # a change asked for while the pool is full: it cannot be made yet
        pool_env.write_manifests(folder, pool_env.pool_manifest(size="128Mi"), pool_env.dataset_manifest("media"),
                                 pool_env.dataset_manifest("later"))
        await wait_for(lambda: condition(nasd, "ZPool", pool, "Full") is not None
                       and condition(nasd, "ZDataset", "media", "Full") is not None
                       and ("ZDataset", "later") in nasd.reconciler.current
                       and condition(nasd, "ZDataset", "later")[0] == "False", 20, "the pool reported full")
        status, reason, message = condition(nasd, "ZPool", pool, "Full")
        assert (status, reason) == ("True", "PoolFull")
        assert "No space left on device" in message and "free space" in message and "snapshots" in message
        assert condition(nasd, "ZDataset", "media", "Full")[:2] == ("True", "PoolFull")
        # Ready stays: clients must still reach the shares to delete files, and pruning must go on
        assert condition(nasd, "ZPool", pool)[0] == "True" and condition(nasd, "ZDataset", "media")[0] == "True"
        later = condition(nasd, "ZDataset", "later")
        assert later[1] == "CommandFailed" and "out of space" in later[2]
        assert (media / "before.txt").read_text() == "written before the pool filled up\n"
        assert (media / "big.bin").stat().st_size == written

        (media / "big.bin").unlink()
        freed = time.monotonic()
        await wait_for(lambda: condition(nasd, "ZPool", pool, "Full") is None
                       and condition(nasd, "ZDataset", "media", "Full") is None
                       and condition(nasd, "ZDataset", "later")[0] == "True", 40, "room again")
        healed = time.monotonic() - freed
        assert (media / "before.txt").read_text() == "written before the pool filled up\n"
        assert os.path.ismount(pool_env.mount_root / pool / "later")
        print(f"\npool full: {reason}: {message!r}; clear {healed:.1f}s after the file was deleted")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def _tiny_tmpfs(path: Path, size: str = "256k") -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(path)], check=True)


def test_a_full_state_folder_keeps_the_old_state_file_says_so_and_writes_it_once_space_is_back(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    state = tmp_path / "state-fs"
    _tiny_tmpfs(state)
    try:
        pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("a"))
        with serving(pool_env, tmp_path, stateDir=str(state), maxBackoffSeconds=2) as start:
            server = start(folder)
            poll(lambda: server.ready("ZDataset", "a"), timeout=30, what="a Ready")
            resources = state / "resources.json"
            poll(lambda: "ZDataset" in resources.read_text(), what="the state written")
            time.sleep(0.5)  # (the follow-up pass after a change writes statuses again)
            old = resources.read_bytes()
            fill(state / "filler")

            pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("a"),
                                     pool_env.dataset_manifest("b"))
            poll(lambda: server.ready("ZDataset", "b"), timeout=30, what="b Ready (reconciling goes on)")
            poll(lambda: "No space left on device" in server.output(), what="the log line")
            line = next(json.loads(ln) for ln in server.output().splitlines()
                        if "No space left on device" in ln and "resources.json" in ln)
            assert line["level"] == "error" and "the last state written is kept whole" in line["message"]
            assert "free space on the file system of the state directory" in line["message"]
            assert resources.read_bytes() == old  # the old file, whole
            assert not [p for p in os.listdir(state) if ".tmp." in p]  # no partial copy keeps the space
            assert server.proc.poll() is None and "Traceback" not in server.output()
            assert server.ready("ZDataset", "a")

            (state / "filler").unlink()
            freed = time.monotonic()
            poll(lambda: '"b"' in resources.read_text(), timeout=20, what="the state written again")
            healed = time.monotonic() - freed
            assert json.loads(resources.read_text())  # whole and valid
            assert "written again" in server.output()
            assert "Traceback" not in server.output()
            print(f"\nstate folder full: {line['message']!r}; written {healed:.1f}s after space was freed")
        assert os.path.ismount(pool_env.mount_root / pool / "b")
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)
