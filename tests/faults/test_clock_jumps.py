"""Faults: the wall clock jumping forward or back by hours under a running ``nasd serve`` with an hourly snapshot
schedule, on the real zfs-fuse.

The jump is real for the process (nasd_testing.faketime: libfaketime preloaded into ``nasd serve``, the monotonic
clock left alone). zfs-fuse is not under libfaketime: a snapshot's ``creation`` property stays in real time, which
is harmless here because nasd reckons schedules and retention only by the UTC time in the snapshot names it gives
(the ``creation`` property is never compared with its clock).

What must hold: a forward jump takes one catch-up snapshot within seconds (the daemon does not sleep through it
for hours), and retention prunes only what its rules say; a back jump takes no burst and prunes nothing dated
"in the future", the schedule says the clock is behind, and it snapshots at the next tick after the jump (not
only once the clock is back at its newest snapshot) without firing continuously.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from nasd_testing.clock import utc
from nasd_testing.faketime import FakeClock, serving_at
from nasd_testing.serve import Server, poll

FORMAT = "GMT-%Y.%m.%d-%H.%M.%S"
#: the timer reads the wall clock at least this often (nasd.aio.CLOCK_CHECK_SECONDS), plus a pass
NOTICED_WITHIN = 5.0 + 4.0


def name(t: float) -> str:
    return time.strftime(FORMAT, time.gmtime(t))


def snapshots(dataset: str) -> list[str]:
    """The names of ``dataset``'s snapshots (after the '@'), sorted."""
    out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line.split("@", 1)[1] for line in out.splitlines() if line.startswith(dataset + "@"))


def make_history(dataset: str, schedule: str, first: str, hours: int) -> list[str]:
    """Snapshots as the schedule made them before: one per hour from ``first``."""
    made = [name(utc(first) + 3600 * i) for i in range(hours)]
    for n in made:
        subprocess.run(["zfs", "snapshot", "-o", f"nasd.io:schedule={schedule}", f"{dataset}@{n}"], check=True)
    return made


def schedule_manifest(retention: dict[str, int]) -> dict[str, Any]:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": "hourly"},
            "spec": {"datasets": ["media"], "schedule": {"cron": "0 * * * *"}, "retention": retention}}


def status(server: Server) -> dict[str, Any]:
    result = server.cli("get", "ZSnapshotSchedule", "hourly", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout).get("status") or {}


def condition(server: Server, type_: str) -> dict[str, Any] | None:
    return next((c for c in status(server).get("conditions", []) if c["type"] == type_), None)


def passes(server: Server) -> int:
    """How many reconcile passes the daemon ran (its /metrics)."""
    out = subprocess.run(["curl", "-s", "--unix-socket", str(server.socket), "http://nasd/metrics"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(float(next(line.split()[-1] for line in out.splitlines()
                          if line.startswith("nasd_reconcile_duration_seconds_count"))))


def quiet(server: Server, dataset: str, seconds: float) -> None:
    """Nothing is taken or pruned for ``seconds``, and the daemon does not spin: a pass every few seconds at most."""
    before, runs = snapshots(dataset), passes(server)
    time.sleep(seconds)
    assert snapshots(dataset) == before
    assert passes(server) - runs <= seconds / 2 + 2, passes(server) - runs


def start(pool_env: Any, tmp_path: Path, clock: FakeClock, at: str, history: tuple[str, int],
          retention: dict[str, int]) -> Callable[[], Iterator[tuple[Server, str, list[str]]]]:
    @contextlib.contextmanager
    def run() -> Iterator[tuple[Server, str, list[str]]]:
        clock.set(at)
        folder = tmp_path / "manifests"
        base = [pool_env.pool_manifest(), pool_env.dataset_manifest("media")]
        pool_env.write_manifests(folder, *base)
        with serving_at(pool_env, tmp_path, clock, folder) as server:
            poll(lambda: server.ready("ZDataset", "media"), timeout=30, what="ZDataset media Ready")
            media = f"{pool_env.pool_name()}/media"
            made = make_history(media, "hourly", *history)
            pool_env.write_manifests(folder, *base, schedule_manifest(retention))
            poll(lambda: server.ready("ZSnapshotSchedule", "hourly"), timeout=20, what="the schedule Ready")
            assert snapshots(media) == made  # adopted: nothing taken (not due), nothing pruned
            yield server, media, made
    return run


def test_a_clock_set_forward_by_hours_while_the_daemon_sleeps_takes_one_catch_up_snapshot_within_seconds_and_prunes_only_what_retention_says(  # noqa: E501
        pool_env, tmp_path, fake_clock):
    # the schedule made 09:00 .. 14:00; it is 14:20, the daemon sleeps until 15:00
    run = start(pool_env, tmp_path, fake_clock, "2026-11-26 14:20:00", ("2026-11-26 09:00:00", 6),
                {"keepLast": 3, "hourly": 6})
    with run() as (server, media, made):
        assert status(server)["nextRun"] == "2026-11-26T15:00:00Z"
        quiet(server, media, 2)
        jumped = time.monotonic()
        fake_clock.set("2026-11-27 00:20:00")  # ten hours forward
        poll(lambda: set(snapshots(media)) - set(made), timeout=NOTICED_WITHIN, interval=0.2,
             what="the catch-up snapshot")
        took = time.monotonic() - jumped
        (catch_up,) = set(snapshots(media)) - set(made)  # one catch-up snapshot, named by the time it was taken
        poll(lambda: status(server).get("lastSnapshot") == catch_up, timeout=10, what="the pass's status")
        after = snapshots(media)
        assert catch_up.startswith("GMT-2026.11.27-00.2")
        # retention: the six newest hours stay; exactly the oldest goes, not the hours the jump skipped
        assert set(made) - set(after) == {made[0]}
        assert '"message": "the wall clock jumped forward by 10.0 h' in server.output()
        quiet(server, media, 4)  # no burst: one snapshot for the ten missed ticks
        s = status(server)
        assert (s["lastSnapshot"], s["nextRun"], s["snapshots"]) == (catch_up, "2026-11-27T01:00:00Z", 6)
        assert condition(server, "ClockBehind") is None
        assert "Traceback" not in server.output()
        print(f"forward 10 h: caught up with {catch_up} {took:.1f} s after the jump; pruned {made[0]} only")


def test_a_clock_set_back_by_hours_takes_no_burst_prunes_nothing_dated_ahead_and_snapshots_at_the_next_tick_after_the_jump(  # noqa: E501
        pool_env, tmp_path, fake_clock):
    # the schedule made 05:00 .. 14:00 and keeps the last 10; it is 14:20, the daemon sleeps until 15:00
    run = start(pool_env, tmp_path, fake_clock, "2026-11-26 14:20:00", ("2026-11-26 05:00:00", 10),
                {"keepLast": 10})
    with run() as (server, media, made):
        jumped = time.monotonic()
        fake_clock.set("2026-11-26 04:59:48")  # back by 9 h 20 min: every snapshot is now dated ahead
        shown = poll(lambda: condition(server, "ClockBehind"), timeout=NOTICED_WITHIN, interval=0.2,
                     what="the ClockBehind condition")
        noticed = time.monotonic() - jumped
        assert (shown["status"], shown["reason"]) == ("True", "ClockWentBack")
        assert "behind this schedule's newest snapshot (2026-11-26T14:00:00Z)" in shown["message"]
        assert '"message": "the wall clock jumped back by 9.3 h' in server.output()
        s = status(server)
        assert s["nextRun"] == "2026-11-26T05:00:00Z"  # the next tick after the jump, not 15:00
        assert snapshots(media) == made  # no burst, and nothing pruned though the clock says they are ahead
        assert server.ready("ZSnapshotSchedule", "hourly")

        # the next tick after the jump: 05:00 was taken before the jump, so this one is named by the second
        # it is taken in; keepLast 10 counts it alone (the ten dated ahead are kept and counted by no rule)
        poll(lambda: len(snapshots(media)) > len(made), timeout=30, interval=0.2, what="the 05:00 tick")
        after = snapshots(media)
        (tick,) = set(after) - set(made)
        assert tick.startswith("GMT-2026.11.26-05.00.0"), tick
        assert set(made) <= set(after)
        quiet(server, media, 4)  # it does not fire again and again while the clock is behind
        s = status(server)
        assert (s["lastSnapshot"], s["nextRun"]) == ("GMT-2026.11.26-14.00.00", "2026-11-26T06:00:00Z")
        assert s["lastRun"].startswith("2026-11-26T05:00:0")
        assert "Traceback" not in server.output()
        print(f"back 9.3 h: noticed {noticed:.1f} s after the jump, next tick {tick}, nothing pruned")
