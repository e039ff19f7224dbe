"""Which snapshots a retention policy keeps: restic's --keep-* rules, in UTC, as a pure function.

Snapshot names here are their own UTC times ("2024-03-31T00:30"), so the expected lists read
as times.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import pytest

from nasd_snapshots.retention import Policy, RetentionResult, plan_retention


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def snaps(*names: str) -> list[tuple[str, float]]:
    """Snapshots named by their UTC time, in a scrambled order (the planner must not rely on it)."""
    out = [(name, at(name)) for name in names]
    random.Random(len(names)).shuffle(out)
    return out


NOW = at("2030-01-01T00:00")


def plan(snapshots, now=NOW, **policy) -> RetentionResult:
    return plan_retention(snapshots, Policy(**policy), now)


# --- the policy ------------------------------------------------------------------------------------------

def test_policy_defaults_to_all_zero_which_keeps_everything():
    assert Policy().keeps_everything() is True
    assert Policy().max_kept() == 0
    assert Policy(daily=1).keeps_everything() is False


def test_max_kept_is_the_sum_of_the_counts():
    assert Policy(keepLast=10, hourly=24, daily=30, weekly=8, monthly=12, yearly=5).max_kept() == 89


@pytest.mark.parametrize("bad", [{"daily": -1}, {"hourly": 1.5}, {"keepLast": "3"}, {"weekly": True}])
def test_policy_rejects_negative_and_non_integer_counts(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Policy(**bad)


# --- basics ----------------------------------------------------------------------------------------------

def test_empty_input_keeps_and_prunes_nothing():
    r = plan([], keepLast=3, daily=7)
    assert r == RetentionResult(keep=[], prune=[], buckets={"keepLast": 0, "daily": 0})


def test_all_zero_policy_keeps_everything_newest_first():
    r = plan(snaps("2024-01-01T00:00", "2024-01-03T00:00", "2024-01-02T00:00"))
    assert r == RetentionResult(keep=["2024-01-03T00:00", "2024-01-02T00:00", "2024-01-01T00:00"],
                                prune=[], buckets={})


def test_keep_last_keeps_the_newest_n_and_prunes_the_rest_oldest_first():
    s = snaps("2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T03:00",
              "2024-01-01T04:00")
    r = plan(s, keepLast=2)
    assert r.keep == ["2024-01-01T04:00", "2024-01-01T03:00"]
    assert r.prune == ["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T02:00"]
    assert r.buckets == {"keepLast": 2}


def test_keep_last_larger_than_the_number_of_snapshots_keeps_them_all():
    r = plan(snaps("2024-01-01T00:00", "2024-01-01T01:00"), keepLast=5)
    assert r.keep == ["2024-01-01T01:00", "2024-01-01T00:00"]
    assert r.prune == []
    assert r.buckets == {"keepLast": 2}


def test_any_iterable_of_pairs_is_accepted():
    pairs = iter(snaps("2024-01-01T00:00", "2024-01-01T01:00"))
    assert plan(pairs, keepLast=1).keep == ["2024-01-01T01:00"]


# --- grid rules ------------------------------------------------------------------------------------------

def test_hourly_keeps_the_newest_snapshot_of_each_hour():
    s = snaps("2024-05-01T10:00", "2024-05-01T10:15", "2024-05-01T10:30", "2024-05-01T10:45",
              "2024-05-01T11:00", "2024-05-01T11:15", "2024-05-01T11:59:59")
    r = plan(s, hourly=5)
    assert r.keep == ["2024-05-01T11:59:59", "2024-05-01T10:45"]
    assert r.prune == ["2024-05-01T10:00", "2024-05-01T10:15", "2024-05-01T10:30", "2024-05-01T11:00",
                       "2024-05-01T11:15"]
    assert r.buckets == {"hourly": 2}


def test_hourly_counts_hours_that_have_snapshots_so_downtime_keeps_history():
    # every 30 minutes 08:00-09:30, down until 14:00, then 14:00-15:30
    s = snaps("2024-05-01T08:00", "2024-05-01T08:30", "2024-05-01T09:00", "2024-05-01T09:30",
              "2024-05-01T14:00", "2024-05-01T14:30", "2024-05-01T15:00", "2024-05-01T15:30")
    r = plan(s, now=at("2024-05-01T16:00"), hourly=3)
    assert r.keep == ["2024-05-01T15:30", "2024-05-01T14:30", "2024-05-01T09:30"]
    assert r.prune == ["2024-05-01T08:00", "2024-05-01T08:30", "2024-05-01T09:00", "2024-05-01T14:00",
                       "2024-05-01T15:00"]


def test_daily_splits_at_midnight_utc_across_new_year():
    s = snaps("2023-12-31T00:00", "2023-12-31T23:59:59", "2024-01-01T00:00", "2024-01-01T00:01")
    r = plan(s, daily=2)
    assert r.keep == ["2024-01-01T00:01", "2023-12-31T23:59:59"]
    assert r.prune == ["2023-12-31T00:00", "2024-01-01T00:00"]


def test_daily_around_february_29():
    s = snaps("2024-02-28T23:00", "2024-02-29T00:00", "2024-02-29T23:59", "2024-03-01T00:00")
    r = plan(s, daily=3)
    assert r.keep == ["2024-03-01T00:00", "2024-02-29T23:59", "2024-02-28T23:00"]
    assert r.prune == ["2024-02-29T00:00"]


def test_weekly_weeks_run_monday_to_sunday():
    # 2024-03-03 is a Sunday, 2024-03-04 a Monday
    s = snaps("2024-02-26T08:00", "2024-03-02T12:00", "2024-03-03T23:59", "2024-03-04T00:00",
              "2024-03-04T12:00", "2024-03-10T23:59:59", "2024-03-11T00:00")
    r = plan(s, weekly=3)
    assert r.keep == ["2024-03-11T00:00", "2024-03-10T23:59:59", "2024-03-03T23:59"]
    assert r.prune == ["2024-02-26T08:00", "2024-03-02T12:00", "2024-03-04T00:00", "2024-03-04T12:00"]


def test_weekly_a_week_that_spans_new_year_is_one_bucket():
    # Monday 2024-12-30 to Sunday 2025-01-05 is one ISO week; Sunday 2024-12-29 ends the one before
    s = snaps("2024-12-29T12:00", "2024-12-30T12:00", "2025-01-01T12:00", "2025-01-05T23:00",
              "2025-01-06T00:30")
    r = plan(s, weekly=5)
    assert r.keep == ["2025-01-06T00:30", "2025-01-05T23:00", "2024-12-29T12:00"]
    assert r.prune == ["2024-12-30T12:00", "2025-01-01T12:00"]
    assert r.buckets == {"weekly": 3}


def test_monthly_around_february_29():
    s = snaps("2024-01-31T23:59", "2024-02-01T00:00", "2024-02-28T12:00", "2024-02-29T23:59",
              "2024-03-01T00:00", "2024-03-31T23:59")
    r = plan(s, monthly=3)
    assert r.keep == ["2024-03-31T23:59", "2024-02-29T23:59", "2024-01-31T23:59"]
    assert r.prune == ["2024-02-01T00:00", "2024-02-28T12:00", "2024-03-01T00:00"]


def test_monthly_counts_only_months_that_have_snapshots():
    s = snaps("2023-06-15T00:00", "2023-07-15T00:00", "2024-03-01T00:00", "2024-03-02T00:00")
    r = plan(s, monthly=3)
    assert r.keep == ["2024-03-02T00:00", "2023-07-15T00:00", "2023-06-15T00:00"]
    assert r.prune == ["2024-03-01T00:00"]


def test_yearly_splits_at_new_year_utc():
    s = snaps("2021-06-01T00:00", "2022-01-01T00:00", "2022-12-31T23:59:59", "2023-01-01T00:00",
              "2023-12-31T23:59:59", "2024-01-01T00:00")
    r = plan(s, yearly=3)
    assert r.keep == ["2024-01-01T00:00", "2023-12-31T23:59:59", "2022-12-31T23:59:59"]
    assert r.prune == ["2021-06-01T00:00", "2022-01-01T00:00", "2023-01-01T00:00"]


def test_monthly_and_yearly_work_before_1970():
    s = snaps("1969-12-31T23:00", "1969-11-30T23:00", "1969-11-01T00:00", "1970-01-01T00:00")
    assert plan(s, monthly=3).keep == ["1970-01-01T00:00", "1969-12-31T23:00", "1969-11-30T23:00"]
    assert plan(s, yearly=5).keep == ["1970-01-01T00:00", "1969-12-31T23:00"]


def test_a_snapshot_is_kept_when_any_rule_keeps_it():
    s = snaps("2024-01-15T12:00", "2024-02-10T12:00", "2024-02-20T06:00", "2024-02-20T18:00",
              "2024-02-21T06:00", "2024-02-21T18:00", "2024-02-21T20:00")
    r = plan(s, keepLast=2, daily=2, monthly=3)
    assert r.keep == ["2024-02-21T20:00", "2024-02-21T18:00", "2024-02-20T18:00", "2024-01-15T12:00"]
    assert r.prune == ["2024-02-10T12:00", "2024-02-20T06:00", "2024-02-21T06:00"]
    # keepLast: 21T20 21T18; daily: 21T20 20T18; monthly: 21T20 (Feb) 15 (Jan)
    assert r.buckets == {"keepLast": 2, "daily": 2, "monthly": 2}


def test_buckets_count_each_rule_separately_even_when_rules_overlap():
    s = snaps("2024-01-01T10:00", "2024-01-01T11:00", "2024-01-01T12:00")
    r = plan(s, keepLast=3, hourly=2, daily=1, weekly=4, monthly=1, yearly=9)
    assert r.keep == ["2024-01-01T12:00", "2024-01-01T11:00", "2024-01-01T10:00"]
    assert r.buckets == {"keepLast": 3, "hourly": 2, "daily": 1, "weekly": 1, "monthly": 1, "yearly": 1}


def test_buckets_leave_out_rules_with_count_zero():
    r = plan(snaps("2024-01-01T10:00"), weekly=1)
    assert r.buckets == {"weekly": 1}


# --- the clock -------------------------------------------------------------------------------------------

def test_future_snapshots_are_kept_and_not_counted():
    now = at("2024-05-01T12:00")
    s = snaps("2024-05-01T13:00", "2024-05-02T00:00", "2024-05-01T12:00", "2024-05-01T11:00",
              "2024-05-01T10:00", "2024-05-01T09:00")
    r = plan(s, now=now, keepLast=1)
    assert r.keep == ["2024-05-02T00:00", "2024-05-01T13:00", "2024-05-01T12:00"]
    assert r.prune == ["2024-05-01T09:00", "2024-05-01T10:00", "2024-05-01T11:00"]
    assert r.buckets == {"keepLast": 1}
    r = plan(s, now=now, hourly=2, daily=1)
    # 12:00 is at `now`, not after it: it counts
    assert r.keep == ["2024-05-02T00:00", "2024-05-01T13:00", "2024-05-01T12:00", "2024-05-01T11:00"]
    assert r.prune == ["2024-05-01T09:00", "2024-05-01T10:00"]
    assert r.buckets == {"hourly": 2, "daily": 1}


def test_future_snapshots_are_kept_even_by_a_policy_that_would_keep_nothing_else():
    r = plan(snaps("2024-05-01T13:00", "2024-05-01T11:00"), now=at("2024-05-01T12:00"), yearly=1)
    assert r.keep == ["2024-05-01T13:00", "2024-05-01T11:00"]
    assert r.prune == []


def test_equal_times_are_ordered_by_name_descending_whatever_the_input_order():
    t = at("2024-05-01T12:00")
    for pairs in ([("a", t), ("b", t), ("c", t - 60)], [("c", t - 60), ("b", t), ("a", t)]):
        r = plan_retention(pairs, Policy(keepLast=1), NOW)
        assert r.keep == ["b"]
        assert r.prune == ["c", "a"]
        assert plan_retention(pairs, Policy(hourly=1), NOW).keep == ["b"]
        assert plan_retention(pairs, Policy(), NOW).keep == ["b", "a", "c"]


@pytest.fixture
def berlin_time(monkeypatch):
    """The process's local time zone is Europe/Berlin (which must not matter)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    assert time.localtime(at("2024-07-01T00:00")).tm_hour == 2  # the zone is really in effect
    yield
    monkeypatch.undo()
    time.tzset()


def test_dst_is_irrelevant_hours_are_utc_hours_around_the_autumn_change(berlin_time):
    # 2024-10-27: 00:30 UTC is 02:30 CEST and 01:30 UTC is 02:30 CET, the same local hour twice
    s = snaps("2024-10-27T00:30", "2024-10-27T01:30", "2024-10-27T02:30")
    r = plan(s, hourly=3)
    assert r.keep == ["2024-10-27T02:30", "2024-10-27T01:30", "2024-10-27T00:30"]
    assert r.prune == []


def test_dst_is_irrelevant_days_and_months_are_utc_around_the_spring_change(berlin_time):
    # 2024-03-30 23:30 UTC is already 2024-03-31 in Berlin; 2024-03-31 23:30 UTC is April 1st there
    s = snaps("2024-03-30T23:30", "2024-03-31T00:30", "2024-03-31T23:30", "2024-04-01T00:30")
    assert plan(s, daily=3).keep == ["2024-04-01T00:30", "2024-03-31T23:30", "2024-03-30T23:30"]
    assert plan(s, monthly=2).keep == ["2024-04-01T00:30", "2024-03-31T23:30"]
    assert plan(s, hourly=4).keep == ["2024-04-01T00:30", "2024-03-31T23:30", "2024-03-31T00:30",
                                      "2024-03-30T23:30"]


# --- a realistic history ---------------------------------------------------------------------------------

def test_a_year_of_quarter_hourly_snapshots_keeps_exactly_what_each_rule_asks_for():
    start, now = at("2023-07-01T00:00"), at("2024-06-30T23:59")
    n = int((now - start) // 900) + 1  # 366 days of quarter hours
    times = [start + i * 900 for i in range(n)]
    pairs = [(datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M"), t) for t in times]
    policy = Policy(keepLast=10, hourly=24, daily=30, weekly=8, monthly=12, yearly=5)
    r = plan_retention(pairs, policy, now)

    last = [f"2024-06-30T{h:02d}:{m:02d}" for h in (21, 22, 23) for m in (0, 15, 30, 45)][2:]
    hourly = [f"2024-06-30T{h:02d}:45" for h in range(24)]
    daily = [f"2024-06-{d:02d}T23:45" for d in range(1, 31)]
    weekly = [f"2024-{md}T23:45"
              for md in ("06-30", "06-23", "06-16", "06-09", "06-02", "05-26", "05-19", "05-12")]
    monthly = [f"{ym}T23:45" for ym in ("2023-07-31", "2023-08-31", "2023-09-30", "2023-10-31", "2023-11-30",
                                        "2023-12-31", "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30",
                                        "2024-05-31", "2024-06-30")]
    yearly = ["2024-06-30T23:45", "2023-12-31T23:45"]
    expected = sorted(set(last + hourly + daily + weekly + monthly + yearly), reverse=True)
    assert len(last) == 10 and len(expected) == 74
    assert r.keep == expected
    assert r.buckets == {"keepLast": 10, "hourly": 24, "daily": 30, "weekly": 8, "monthly": 12, "yearly": 2}
    assert len(r.prune) == n - 74
    assert r.prune[:3] == ["2023-07-01T00:00", "2023-07-01T00:15", "2023-07-01T00:30"]
    assert set(r.prune) == {name for name, _ in pairs} - set(expected)
