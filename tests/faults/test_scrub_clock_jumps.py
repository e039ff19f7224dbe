"""Faults: a restart and the wall clock jumping forward or back under a running ``nasd serve`` whose ZPool is scrubbed
every hour, on the real zfs-fuse.

The jump is real for the process, as in test_clock_jumps.py (nasd_testing.faketime: libfaketime preloaded into
``nasd serve``, the monotonic clock left alone). zfs-fuse is not under it: the times of the pool's scrubs (its
scan line) stay real, so after a jump nasd's clock and the pool's disagree by hours, which is the hard case (a
real jump of the system clock moves both).

What must hold: a restarted nasd takes the last scrub's time from the pool and starts none; the pass that starts a
due scrub comes at its tick (the plugin's timer: the periodic resync here is an hour); a clock set forward by
hours starts ONE scrub within seconds (not one per missed tick, nor one per pass); a clock set back starts none,
and the schedule then counts from the time it went back.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from nasd_testing.faketime import FakeClock, serving_at
from nasd_testing.serve import Server, poll

pytestmark = pytest.mark.zfs
#: the ZFS plugin's timer reads the wall clock at least this often (nasd.aio.CLOCK_CHECK_SECONDS), plus a pass
NOTICED_WITHIN = 5.0 + 4.0
RESYNC_SECONDS = 3600  # (only the timer wakes a pass)


def scrubs(pool: str) -> int:
    out = subprocess.run(["zpool", "history", pool], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.split()[1:3] == ["zpool", "scrub"])


def status(server: Server, pool: str) -> dict[str, Any]:
    result = server.cli("get", "ZPool", pool, "-o", "yaml")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout).get("status") or {}


def quiet(pool: str, seconds: float, expected: int) -> None:
    """No scrub starts for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert scrubs(pool) == expected, f"a scrub started: {scrubs(pool)} instead of {expected}"
        time.sleep(0.3)


def test_a_restart_and_clock_jumps_start_no_burst_of_scrubs(pool_env: Any, tmp_path: Path,
                                                             fake_clock: FakeClock) -> None:
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(vdev_type="mirror", devices=2,
                                                            scrub={"schedule": {"interval": "1h"}}))
    with serving_at(pool_env, tmp_path, fake_clock, folder, resyncSeconds=RESYNC_SECONDS) as server:
        poll(lambda: server.ready("ZPool", pool), timeout=30, what="the pool Ready")
        poll(lambda: scrubs(pool) == 1 and (status(server, pool).get("lastScrub") or {}).get("endTime"), timeout=20,
             what="the first scrub (the pool never had one)")
        quiet(pool, 2, 1)

    # a restart knows the last scrub from the pool itself (nasd's own memory of it removed)
    (pool_env.state_dir / "zfs-scrubs.json").unlink()
    with serving_at(pool_env, tmp_path, fake_clock, folder, resyncSeconds=RESYNC_SECONDS) as server:
        poll(lambda: server.ready("ZPool", pool), timeout=30, what="the pool Ready after the restart")
        quiet(pool, 3, 1)
        last = status(server, pool)["lastScrub"]["endTime"]

        # 4 s before the next whole hour (a tick of the interval): the timer wakes a pass at the tick
        tick = (int(time.time()) // 3600 + 1) * 3600
        fake_clock.shift(tick - 4 - int(time.time()))
        poll(lambda: status(server, pool).get("nextScrub") == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tick)),
             timeout=NOTICED_WITHIN, what="the next scrub planned at the tick")
        assert scrubs(pool) == 1
        poll(lambda: scrubs(pool) == 2, timeout=4 + 3, interval=0.2, what="the scrub at its tick")
        late = fake_clock.now() - tick
        quiet(pool, 2, 2)

        jumped = time.monotonic()
        fake_clock.shift(fake_clock.offset + 5 * 3600)  # five hours forward: five ticks of the hourly schedule missed
        poll(lambda: scrubs(pool) == 3, timeout=NOTICED_WITHIN, interval=0.2, what="the catch-up scrub")
        took = time.monotonic() - jumped
        quiet(pool, 5, 3)  # one, not five, and not one per pass
        assert "the wall clock jumped forward" in server.output()

        # back by ten hours, to 30 s past a whole hour: the next tick of the interval is ~an hour away
        behind = -10 * 3600 - int(time.time()) % 3600 + 30
        fake_clock.shift(behind)
        poll(lambda: "the wall clock jumped back" in server.output(), timeout=NOTICED_WITHIN, what="the jump back")
        quiet(pool, 5, 3)
        next_tick = (int(fake_clock.now()) // 3600 + 1) * 3600
        st = status(server, pool)
        assert st["nextScrub"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(next_tick)), st
        overdue = next(c for c in st["conditions"] if c["type"] == "ScrubOverdue")
        assert overdue["status"] == "False", overdue
        assert server.ready("ZPool", pool)
        assert "Traceback" not in server.output()
    print(f"restart: no scrub (last {last}); at its tick: started {late:.1f} s after it; forward 5 h: one scrub "
          f"{took:.1f} s after the jump; back 10 h: none")
