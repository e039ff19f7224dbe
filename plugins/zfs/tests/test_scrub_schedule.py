"""When a scheduled scrub starts (pure: from the pool's scan line, what nasd remembers and the clock), and the
spec's validation. The real scrubs are in test_pool_care.py and tests/faults/test_scrub_clock_jumps.py."""

from __future__ import annotations

import pytest

from nasd.models import ManifestError, parse_resource
from nasd_testing.clock import utc
from nasd_zfs.health import PoolHealth, ScanInfo
from nasd_zfs.scrub import ScrubBook, decide

T0 = utc("2026-11-26 04:00:30")


def pool(**scrub: object) -> object:
    spec = {"vdevs": [{"type": "mirror", "devices": ["/srv/a.img", "/srv/b.img"]}]}
    if scrub:
        spec["scrub"] = scrub
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "tank"},
                           "spec": spec})


def scrubbed(ended: float | None, state: str = "finished", kind: str = "scrub") -> PoolHealth:
    scan = ScanInfo() if ended is None and state == "finished" else ScanInfo(kind=kind, state=state, ended=ended,
                                                                             started=ended)
    return PoolHealth(name="tank", state="ONLINE", scan=scan)


HOURLY = {"schedule": {"interval": "1h"}}


def test_no_spec_scrub_never_scrubs() -> None:
    assert not decide(pool(), scrubbed(None), ScrubBook(), T0).start


def test_a_pool_never_scrubbed_is_scrubbed_at_once_and_the_next_pass_is_asked_for_at_the_next_tick() -> None:
    d = decide(pool(**HOURLY), scrubbed(None), ScrubBook(), T0)
    assert d.start and d.wake == utc("2026-11-26 05:00:00")


def test_one_scrub_per_due_tick_however_many_were_missed_and_none_before_it() -> None:
    book = ScrubBook()
    health = scrubbed(utc("2026-11-26 03:10:00"))
    assert decide(pool(**HOURLY), health, book, utc("2026-11-26 03:59:59")).start is False
    d = decide(pool(**HOURLY), health, book, utc("2026-11-26 09:30:00"))  # five ticks missed
    assert d.start and d.due == utc("2026-11-26 04:00:00")
    book.started["tank"] = utc("2026-11-26 09:30:00")  # (what the scrub's action records)
    # the pool still shows the old scan (or the new scrub ended by the pool's own, slower clock): not again
    again = decide(pool(**HOURLY), health, book, utc("2026-11-26 09:30:05"))
    assert not again.start and again.due == utc("2026-11-26 10:00:00")


def test_nothing_starts_while_a_scrub_or_resilver_runs_or_on_a_pool_that_cannot_do_io() -> None:
    assert not decide(pool(**HOURLY), scrubbed(None, state="running"), ScrubBook(), T0).start
    assert not decide(pool(**HOURLY), scrubbed(None, state="running", kind="resilver"), ScrubBook(), T0).start
    assert not decide(pool(**HOURLY), scrubbed(None, state="paused"), ScrubBook(), T0).start
    book = ScrubBook(running={"tank"})  # (nasd's own `zpool scrub` still running: zfs-fuse's blocks)
    assert not decide(pool(**HOURLY), scrubbed(None), book, T0).start
    faulted = scrubbed(None)
    faulted.state = "SUSPENDED"
    assert not decide(pool(**HOURLY), faulted, ScrubBook(), T0).start


def test_a_clock_behind_the_last_scrub_starts_none_and_counts_from_when_it_went_back() -> None:
    book = ScrubBook()
    health = scrubbed(utc("2026-11-26 14:00:00"))
    back = utc("2026-11-26 04:10:00")
    d = decide(pool(**HOURLY), health, book, back)
    assert not d.start and d.due == utc("2026-11-26 05:00:00")
    later = decide(pool(**HOURLY), health, book, utc("2026-11-26 05:00:01"))  # still behind 14:00
    assert later.start and later.due == utc("2026-11-26 05:00:00")


def test_a_scrub_cancelled_by_hand_is_not_started_again_before_the_next_tick() -> None:
    health = scrubbed(utc("2026-11-26 04:20:00"), state="canceled")
    assert not decide(pool(**HOURLY), health, ScrubBook(), utc("2026-11-26 04:30:00")).start


def test_the_last_scrub_is_remembered_when_a_resilver_takes_the_scan_line() -> None:
    book = ScrubBook()
    book.seen("tank", scrubbed(utc("2026-11-26 04:20:00")).scan)
    resilvered = scrubbed(utc("2026-11-26 04:25:00"), kind="resilver")
    assert book.last_scrub("tank", resilvered.scan).ended == utc("2026-11-26 04:20:00")
    assert not decide(pool(**HOURLY), resilvered, book, utc("2026-11-26 04:30:00")).start
    assert decide(pool(**HOURLY), resilvered, ScrubBook(), utc("2026-11-26 04:30:00")).start  # (knew of none)


def test_cron_schedules_count_from_the_last_scrub_too() -> None:
    weekly = {"schedule": {"cron": "0 3 * * 0"}}  # Sundays 03:00 UTC; 2026-11-26 is a Thursday
    health = scrubbed(utc("2026-11-22 03:05:00"))
    assert not decide(pool(**weekly), health, ScrubBook(), utc("2026-11-28 23:00:00")).start
    d = decide(pool(**weekly), health, ScrubBook(), utc("2026-11-29 03:00:10"))
    assert d.start and d.due == utc("2026-11-29 03:00:00")


@pytest.mark.parametrize(("spec", "says"), [
    ({"scrub": {"schedule": {}}}, "give cron"),
    ({"scrub": {"schedule": {"cron": "0 3 31 2 *"}}}, "never"),
    ({"scrub": {"schedule": {"interval": "40d"}}}, "maxAgeDays (35) must be longer than the interval (40d)"),
    ({"scrub": {"schedule": {"interval": "1d"}, "maxAgeDays": 0}}, "greater than or equal to 1"),
    ({"capacity": {"warningPercent": 90, "criticalPercent": 80}}, "warningPercent (90) must not be above"),
    ({"capacity": {"criticalPercent": 101}}, "less than or equal to 100"),
])
def test_a_bad_scrub_or_capacity_spec_is_refused_with_what_to_fix(spec: dict, says: str) -> None:
    doc = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "tank"},
           "spec": {"vdevs": [{"devices": ["/srv/a.img"]}], **spec}}
    with pytest.raises(ManifestError) as e:
        parse_resource(doc)
    assert says in str(e.value), str(e.value)


def test_a_paused_scrub_blocks_new_ones_and_says_how_to_resume_it() -> None:
    from nasd.plugin import Plan
    from nasd_zfs.alerts import pool_care

    health = PoolHealth(name="tank", state="ONLINE", scan=ScanInfo(kind="scrub", state="paused", percent=30.0))
    plan = Plan()
    pool_care(plan, pool(**HOURLY), health, 10, 90, ScrubBook(), T0)
    overdue = next(c for c in plan.conditions if c.type == "ScrubOverdue")
    assert (overdue.ok, overdue.reason) == (True, "ScrubPaused") and "`zpool scrub tank` resumes it" in overdue.message
    assert plan.actions == []
