"""Looking for dead mounts never stops a pass: a statfs on a mount whose daemon hangs (here the real zfs-fuse,
stopped with SIGSTOP) does not return, so it runs off the event loop, time-limited, one probe at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from nasd_zfs.mounts import MountProbe

pytestmark = pytest.mark.zfs


def wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped (a signal reaches the threads one by one)."""
    deadline = time.monotonic() + 5
    while any(open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0] != "T"
              for t in os.listdir(f"/proc/{pid}/task")):
        assert time.monotonic() < deadline, "zfs-fuse did not stop"
        time.sleep(0.01)


async def test_a_mount_whose_daemon_hangs_costs_a_pass_the_probes_timeout_and_is_found_alive_once_it_answers(
        pool_env: Any, caplog: Any) -> None:
    if pool_env.daemon.kernel:
        pytest.skip("the hang is made by stopping the private zfs-fuse daemon")
    pool = pool_env.pool_name()
    vdev = pool_env.vdev("tank-0")
    os.makedirs(os.path.dirname(vdev), exist_ok=True)
    subprocess.run(["truncate", "-s", "128M", vdev], check=True)
    mountpoint = pool_env.mount_root / pool
    subprocess.run(["zpool", "create", "-m", str(mountpoint), pool, vdev], check=True, capture_output=True)
    probe = MountProbe(timeout=0.5)
    assert await probe.dead([str(mountpoint)]) == set()  # alive: nothing dead

    os.kill(pool_env.daemon.pid, signal.SIGSTOP)
    try:
        wait_stopped(pool_env.daemon.pid)
        ticks = 0

        async def ticker() -> None:  # the event loop goes on meanwhile
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.05)

        task = asyncio.ensure_future(ticker())
        started = time.monotonic()
        assert await probe.dead([str(mountpoint)]) == set()
        took = time.monotonic() - started
        again = time.monotonic()
        assert await probe.dead([str(mountpoint)]) == set()  # (the first probe still hangs: none is started)
        assert time.monotonic() - again < 0.1
        task.cancel()
        assert 0.4 < took < 2 and ticks >= 5
        assert f"statfs of {mountpoint} did not return" in caplog.text
        assert f"statfs of {mountpoint} has not returned" in caplog.text
    finally:
        os.kill(pool_env.daemon.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while await probe.dead([str(mountpoint)]) != set() or probe._inflight is not None and probe._inflight.is_alive():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
