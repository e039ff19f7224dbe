"""Faults: a restart and the wall clock jumping forward or back under a running ``nasd serve`` whose ZPool is scrubbed
every hour, on the real zfs-fuse.

The jump is real for the process, as in test_clock_jumps.py: libfaketime is preloaded into ``nasd serve`` with a
timestamp file it re-reads on every call, and the monotonic clock is left alone. zfs-fuse is not under it: the
times of the pool's scrubs (its scan line) stay real, so after a jump nasd's clock and the pool's disagree by
hours, which is the hard case (a real jump of the system clock moves both).

What must hold: a restarted nasd takes the last scrub's time from the pool and starts none; the pass that starts a
due scrub comes at its tick (the plugin's timer: the periodic resync here is an hour); a clock set forward by
hours starts ONE scrub within seconds (not one per missed tick, nor one per pass); a clock set back starts none,
and the schedule then counts from the time it went back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from glob import glob
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from nasd_testing.serve import NASD, Server, clean_env, poll

pytestmark = pytest.mark.zfs
LIBFAKETIME = next(iter(glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
#: the ZFS plugin's timer reads the wall clock at least this often (nasd_zfs.waker.CLOCK_CHECK_SECONDS), plus a pass
NOTICED_WITHIN = 5.0 + 4.0


class ShiftedClock:
    """The wall clock of the processes started with :meth:`env`: real time plus an offset the test sets."""

    def __init__(self, folder: Path):
        self.file = folder / "faketime"
        self.offset = 0
        self.shift(0)

    def shift(self, offset: int) -> None:
        self.offset = offset
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{offset:+d}\n")
        os.replace(tmp, self.file)

    def now(self) -> float:
        return time.time() + self.offset

    def env(self) -> dict[str, str]:
        assert LIBFAKETIME
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1",
                "DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def clock(tmp_path: Path) -> ShiftedClock:
    if LIBFAKETIME is None:
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail("libfaketime is not installed (make test installs faketime)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return ShiftedClock(tmp_path)


@contextlib.contextmanager
def serving_at(pool_env: Any, tmp_path: Path, clock: ShiftedClock, manifests: Path) -> Iterator[Server]:
    cfg = pool_env.write_config(manifestPollSeconds=0.2, resyncSeconds=3600)  # (only the timer wakes a pass)
    sock, log = tmp_path / "serve.sock", tmp_path / "serve.log"
    sock.unlink(missing_ok=True)
    with open(log, "a") as out:
        proc = subprocess.Popen([NASD, "serve", "--manifests", str(manifests), "--config", str(cfg), "--socket",
                                 str(sock)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=clean_env(**clock.env()))
    server = Server(proc, sock, log)
    try:
        poll(lambda: sock.exists() or proc.poll() is not None, timeout=20, what="the API socket")
        assert proc.poll() is None, f"nasd serve exited with {proc.returncode}:\n{server.output()}"
        yield server
    finally:
        server.stop()


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
                                                             clock: ShiftedClock) -> None:
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(vdev_type="mirror", devices=2,
                                                            scrub={"schedule": {"interval": "1h"}}))
    with serving_at(pool_env, tmp_path, clock, folder) as server:
        poll(lambda: server.ready("ZPool", pool), timeout=30, what="the pool Ready")
        poll(lambda: scrubs(pool) == 1 and (status(server, pool).get("lastScrub") or {}).get("endTime"), timeout=20,
             what="the first scrub (the pool never had one)")
        quiet(pool, 2, 1)

    # a restart knows the last scrub from the pool itself (nasd's own memory of it removed)
    (pool_env.state_dir / "zfs-scrubs.json").unlink()
    with serving_at(pool_env, tmp_path, clock, folder) as server:
        poll(lambda: server.ready("ZPool", pool), timeout=30, what="the pool Ready after the restart")
        quiet(pool, 3, 1)
        last = status(server, pool)["lastScrub"]["endTime"]

        # 4 s before the next whole hour (a tick of the interval): the timer wakes a pass at the tick
        tick = (int(time.time()) // 3600 + 1) * 3600
        clock.shift(tick - 4 - int(time.time()))
        poll(lambda: status(server, pool).get("nextScrub") == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tick)),
             timeout=NOTICED_WITHIN, what="the next scrub planned at the tick")
        assert scrubs(pool) == 1
        poll(lambda: scrubs(pool) == 2, timeout=4 + 3, interval=0.2, what="the scrub at its tick")
        late = clock.now() - tick
        quiet(pool, 2, 2)

        jumped = time.monotonic()
        clock.shift(clock.offset + 5 * 3600)  # five hours forward: five ticks of the hourly schedule missed
        poll(lambda: scrubs(pool) == 3, timeout=NOTICED_WITHIN, interval=0.2, what="the catch-up scrub")
        took = time.monotonic() - jumped
        quiet(pool, 5, 3)  # one, not five, and not one per pass
        assert "the wall clock jumped forward" in server.output()

        # back by ten hours, to 30 s past a whole hour: the next tick of the interval is ~an hour away
        behind = -10 * 3600 - int(time.time()) % 3600 + 30
        clock.shift(behind)
        poll(lambda: "the wall clock jumped back" in server.output(), timeout=NOTICED_WITHIN, what="the jump back")
        quiet(pool, 5, 3)
        next_tick = (int(clock.now()) // 3600 + 1) * 3600
        st = status(server, pool)
        assert st["nextScrub"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(next_tick)), st
        overdue = next(c for c in st["conditions"] if c["type"] == "ScrubOverdue")
        assert overdue["status"] == "False", overdue
        assert server.ready("ZPool", pool)
        assert "Traceback" not in server.output()
    print(f"restart: no scrub (last {last}); at its tick: started {late:.1f} s after it; forward 5 h: one scrub "
          f"{took:.1f} s after the jump; back 10 h: none")
