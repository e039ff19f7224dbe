"""The schedule planner on its own (pure: a listing in, a decision out), for the cases real time makes
slow or impossible to stage: clock jumps, long downtime, >512 versions, names taken by hand."""

from __future__ import annotations

import pytest

from nasd_testing.clock import utc
from nasd.models import ManifestError, parse_resource
from nasd.snapshot_listing import SnapshotInfo, SnapshotListing
from nasd_snapshots.schedule import name_pattern, name_time, plan_schedule, policy_token, whole_subtrees

TREE = ["tank/media", "tank/media/a", "tank/media/b"]


def schedule(**spec):
    spec = {"datasets": ["media"], "schedule": {"cron": "0 * * * *"}, **spec}
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule",
                           "metadata": {"name": "s"}, "spec": spec})


def listing(*snaps: tuple[str, str], mine: bool = True) -> SnapshotListing:
    return SnapshotListing(roots=["tank/media"], filesystems=TREE, snapshots=[
        SnapshotInfo(dataset=d, name=n, created=0, properties={"nasd.io:schedule": "s"} if mine else {})
        for d, n in snaps])


def test_a_tick_on_time_is_named_by_its_scheduled_time_and_a_late_one_by_the_actual_time():
    last = listing(("tank/media", "GMT-2026.11.26-03.00.00"))
    assert plan_schedule(schedule(), ["tank/media"], last, utc("2026-11-26 04:00:20")).take == "GMT-2026.11.26-04.00.00"
    late = plan_schedule(schedule(), ["tank/media"], last, utc("2026-11-26 07:42:09"))
    assert late.take == "GMT-2026.11.26-07.42.09"  # a catch-up says when it was really taken


def test_a_sub_minute_interval_names_the_latest_tick_not_an_earlier_one():
    last = listing(("tank/media", "GMT-2026.11.26-03.59.30"))
    decision = plan_schedule(schedule(schedule={"interval": "30s"}), ["tank/media"], last, utc("2026-11-26 04:00:05"))
    assert decision.take == "GMT-2026.11.26-04.00.00"


def test_a_clock_that_jumped_back_takes_nothing_at_once_and_goes_on_at_the_next_tick_after_the_jump():
    s = schedule()
    last = listing(("tank/media", "GMT-2026.11.26-04.00.00"), ("tank/media", "GMT-2026.11.26-05.00.00"))
    s.status.lastRun = "2026-11-26T05:00:00Z"
    decision = plan_schedule(s, ["tank/media"], last, utc("2026-11-26 03:30:00"))
    assert decision.take is None and decision.prune == []
    assert (decision.status["lastRun"], decision.status["nextRun"]) == ("2026-11-26T03:30:00Z", "2026-11-26T04:00:00Z")
    assert [(c.type, c.ok, c.reason) for c in decision.conditions if c.type == "ClockBehind"] == [
        ("ClockBehind", True, "ClockWentBack")]
    s.status.lastRun = decision.status["lastRun"]
    # the 04:00 name was taken before the jump: the tick is named by the actual time, not skipped
    decision = plan_schedule(s, ["tank/media"], last, utc("2026-11-26 04:00:09"))
    assert decision.take == "GMT-2026.11.26-04.00.09"


def test_a_dataset_that_already_has_the_name_is_left_out_of_the_tick():
    last = listing(("tank/media", "GMT-2026.11.26-03.00.00"))
    last.snapshots += listing(("tank/media/b", "GMT-2026.11.26-04.00.00"), mine=False).snapshots  # by hand
    decision = plan_schedule(schedule(recursive=True), ["tank/media"], last, utc("2026-11-26 04:00:01"))
    assert (decision.take_datasets, decision.take_recursive) == (["tank/media", "tank/media/a"], False)


def test_a_whole_subtree_is_taken_with_r_and_an_exclusion_breaks_it():
    assert whole_subtrees(TREE, listing()) == ["tank/media"]
    assert whole_subtrees(["tank/media", "tank/media/a"], listing()) is None
    decision = plan_schedule(schedule(recursive=True, exclude=["media/b"]), ["tank/media"], listing(), utc(
        "2026-11-26 04:00:00"))
    assert (decision.take_datasets, decision.take_recursive) == (["tank/media", "tank/media/a"], False)


def test_more_than_512_versions_on_a_shared_dataset_is_ready_with_a_warning_saying_by_how_much():
    s = schedule(retention={"keepLast": 10, "hourly": 600})
    decision = plan_schedule(s, ["tank/media"], listing(), utc("2026-11-26 04:00:00"), shared={"tank/media"})
    (warning,) = [c for c in decision.conditions if c.type == "PreviousVersionsTruncated"]
    assert warning.ok is True and "lower the counts by 98" in warning.message
    assert decision.problem is None
    quiet = plan_schedule(schedule(retention={"hourly": 24}), ["tank/media"], listing(), utc("2026-11-26 04:00:00"),
                          shared={"tank/media"})
    assert [c.ok for c in quiet.conditions if c.type == "PreviousVersionsTruncated"] == [False]


def test_hand_made_snapshots_in_the_format_are_not_the_schedules_and_never_pruned():
    hand = listing(*[("tank/media", f"GMT-2026.11.2{d}-00.00.00") for d in range(6)], mine=False)
    decision = plan_schedule(schedule(retention={"keepLast": 1}), ["tank/media"], hand, utc("2026-11-26 04:00:00"))
    assert decision.prune == [] and decision.take == "GMT-2026.11.26-04.00.00"


def test_names_map_back_to_their_utc_time_and_other_names_do_not():
    pattern = name_pattern("GMT-%Y.%m.%d-%H.%M.%S")
    assert name_time(pattern, "GMT-2026.11.26-04.00.00") == utc("2026-11-26 04:00:00")
    assert name_time(pattern, "GMT-2026.13.26-04.00.00") is None  # no 13th month
    assert name_time(pattern, "before-upgrade") is None


@pytest.mark.parametrize("fmt", ["%Y%m%d", "snap-%Y.%m.%d-%H.%M-%Z", "GMT-%Y.%m.%d-%H.%M.%S;rm", "%Y%Y%m%d%H%M"])
def test_a_name_format_that_cannot_say_its_time_or_smuggles_characters_is_refused(fmt):
    with pytest.raises(ManifestError) as e:
        schedule(format=fmt)
    assert "spec.format" in str(e.value) and "%Y %m %d %H %M" in str(e.value)


def test_a_confirmation_approves_only_the_policy_it_names_not_a_later_change():
    history = listing(*[("tank/media", f"GMT-2026.11.26-{h:02d}.00.00") for h in range(24)])
    now = utc("2026-11-26 23:30:00")
    first = schedule(retention={"keepLast": 10})
    first.metadata.annotations["nasd.io/confirm-prune"] = f"500/{policy_token({'keepLast': 10})}"
    assert len(plan_schedule(first, ["tank/media"], history, now).prune) == 14
    later = schedule(retention={"keepLast": 2}, pruneConfirmThreshold=5)
    later.metadata.annotations = dict(first.metadata.annotations)  # left over from the first change
    later.status.retentionApplied = {"keepLast": 10}
    decision = plan_schedule(later, ["tank/media"], history, now)
    # 8 more than the policy in effect would prune: more than the threshold, and the old "500" is for another policy
    assert decision.status["pendingPrune"] == 8 and len(decision.prune) == 14
