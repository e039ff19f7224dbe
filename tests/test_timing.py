"""When a schedule fires: cron expressions and intervals, always in UTC."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from nasd.models.timing import is_due, next_tick, parse_cron, parse_interval


def at(text: str) -> float:
    """'2024-02-29 12:00[:ss]' (UTC) -> epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def ticks(expr: str, after: str, n: int) -> list[str]:
    cron, t, out = parse_cron(expr), at(after), []
    for _ in range(n):
        t = cron.next_after(t)
        out.append(iso(t))
    return out


def brute_force_next(expr: str, after: float, horizon_days: int = 400) -> float:
    """A slow reference with datetime: day by day, then minute by minute within a matching day."""
    cron = parse_cron(expr)
    parts = expr.split()
    dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
    t = datetime.fromtimestamp(after, timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = t + timedelta(days=horizon_days)
    while t < end:
        dom_ok = t.day in cron.doms
        dow_ok = t.isoweekday() % 7 in cron.dows
        day_ok = (dom_ok and dow_ok) if (dom_star or dow_star) else (dom_ok or dow_ok)
        if not (day_ok and t.month in cron.months):
            t = t.replace(hour=0, minute=0) + timedelta(days=1)
            continue
        if t.minute in cron.minutes and t.hour in cron.hours:
            return t.timestamp()
        t += timedelta(minutes=1)
    raise AssertionError("no tick within the horizon")


# --- parsing ---------------------------------------------------------------------------------------------

def test_star_fields_cover_the_whole_range_of_each_field():
    c = parse_cron("* * * * *")
    assert c.minutes == tuple(range(60))
    assert c.hours == tuple(range(24))
    assert c.doms == tuple(range(1, 32))
    assert c.months == tuple(range(1, 13))
    assert c.dows == tuple(range(7))


def test_single_values_lists_and_ranges_are_combined_in_one_field():
    c = parse_cron("5,10-12,59 0 1,15 6-8 1-5")
    assert c.minutes == (5, 10, 11, 12, 59)
    assert c.hours == (0,)
    assert c.doms == (1, 15)
    assert c.months == (6, 7, 8)
    assert c.dows == (1, 2, 3, 4, 5)


def test_steps_apply_to_star_and_to_ranges():
    assert parse_cron("*/15 * * * *").minutes == (0, 15, 30, 45)
    assert parse_cron("1-10/2 * * * *").minutes == (1, 3, 5, 7, 9)
    assert parse_cron("0 */5 * * *").hours == (0, 5, 10, 15, 20)
    assert parse_cron("0 0 */10 * *").doms == (1, 11, 21, 31)
    assert parse_cron("0 0 * */4 *").months == (1, 5, 9)
    assert parse_cron("0,30-40/5,*/20 * * * *").minutes == (0, 20, 30, 35, 40)


def test_day_of_week_7_is_sunday_like_0():
    assert parse_cron("0 0 * * 7").dows == (0,)
    assert parse_cron("0 0 * * 5-7").dows == (0, 5, 6)
    assert parse_cron("0 0 * * 0,7").dows == (0,)
    # 2024-03-06 is a Wednesday; the next Sunday is 2024-03-10
    assert ticks("0 0 * * 7", "2024-03-06 12:00", 2) == ["2024-03-10 00:00:00", "2024-03-17 00:00:00"]
    assert ticks("0 0 * * 0", "2024-03-06 12:00", 2) == ["2024-03-10 00:00:00", "2024-03-17 00:00:00"]


def test_whitespace_between_fields_is_free_and_the_expression_is_normalized():
    assert parse_cron("  0   3 * *\t* ").expr == "0 3 * * *"


@pytest.mark.parametrize("expr, message", [
    ("0 25 * * *", "cron hour field '25': values must be 0-23"),
    ("60 * * * *", "cron minute field '60': values must be 0-59"),
    ("0 0 0 * *", "cron day-of-month field '0': values must be 1-31"),
    ("0 0 32 * *", "cron day-of-month field '32': values must be 1-31"),
    ("0 0 * 13 *", "cron month field '13': values must be 1-12"),
    ("0 0 * 0 *", "cron month field '0': values must be 1-12"),
    ("0 0 * * 8", "cron day-of-week field '8': values must be 0-7"),
    ("0 1-24 * * *", "cron hour field '1-24': values must be 0-23"),
    ("x * * * *", "cron minute field 'x': malformed item 'x'"),
    ("-1 * * * *", "cron minute field '-1': malformed"),
    ("1-2-3 * * * *", "cron minute field '1-2-3': malformed"),
    (",5 * * * *", "cron minute field ',5': malformed item ''"),
    ("5, * * * *", "cron minute field '5,': malformed item ''"),
    ("0 0 * * mon", "cron day-of-week field 'mon': malformed"),
    ("*/0 * * * *", "cron minute field '*/0': step must be at least 1"),
    ("5/2 * * * *", "cron minute field '5/2': a /STEP needs '*' or a range"),
    ("*/ * * * *", "cron minute field '*/': malformed"),
    ("0 10-5 * * *", "cron hour field '10-5': range '10-5' is backwards"),
])
def test_malformed_or_out_of_range_fields_raise_naming_the_field_and_its_range(expr, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)) as info:
        parse_cron(expr)
    field_name = message.split()[1]
    assert field_name in ("minute", "hour", "day-of-month", "month", "day-of-week")
    assert re.search(r"values must be \d-\d+", str(info.value))


@pytest.mark.parametrize("expr", ["", "* * * *", "* * * * * *", "@daily"])
def test_an_expression_without_exactly_five_fields_raises(expr):
    with pytest.raises(ValueError, match="must have 5 fields"):
        parse_cron(expr)


# --- next_after ------------------------------------------------------------------------------------------

def test_next_after_is_strictly_after_and_on_whole_minutes():
    assert ticks("* * * * *", "2024-03-06 10:00:00", 1) == ["2024-03-06 10:01:00"]
    assert ticks("* * * * *", "2024-03-06 10:00:30", 1) == ["2024-03-06 10:01:00"]
    assert ticks("* * * * *", "2024-03-06 10:00:59.999", 1) == ["2024-03-06 10:01:00"]
    assert ticks("0 10 * * *", "2024-03-06 10:00:00", 1) == ["2024-03-07 10:00:00"]
    assert ticks("0 10 * * *", "2024-03-06 09:59:59.5", 1) == ["2024-03-06 10:00:00"]


def test_next_after_walks_hours_and_minutes_within_the_day():
    assert ticks("15,45 9,17 * * *", "2024-03-06 09:20", 4) == [
        "2024-03-06 09:45:00", "2024-03-06 17:15:00", "2024-03-06 17:45:00", "2024-03-07 09:15:00"]


def test_next_after_crosses_month_ends():
    assert ticks("0 0 1 * *", "2024-01-31 12:00", 3) == [
        "2024-02-01 00:00:00", "2024-03-01 00:00:00", "2024-04-01 00:00:00"]
    assert ticks("0 0 31 * *", "2024-01-31 00:00", 3) == [
        "2024-03-31 00:00:00", "2024-05-31 00:00:00", "2024-07-31 00:00:00"]


def test_next_after_crosses_year_ends():
    assert ticks("0 0 * * *", "2024-12-31 23:59:59", 1) == ["2025-01-01 00:00:00"]
    assert ticks("59 23 31 12 *", "2024-12-31 23:59", 2) == ["2025-12-31 23:59:00", "2026-12-31 23:59:00"]
    assert ticks("0 12 * 1 *", "2024-02-01 00:00", 1) == ["2025-01-01 12:00:00"]


def test_next_after_finds_february_29_only_in_leap_years():
    assert ticks("0 12 29 2 *", "2023-01-01 00:00", 3) == [
        "2024-02-29 12:00:00", "2028-02-29 12:00:00", "2032-02-29 12:00:00"]
    # 2100 is not a leap year: eight years from 2096 to 2104
    assert ticks("0 12 29 2 *", "2096-03-01 00:00", 1) == ["2104-02-29 12:00:00"]
    assert ticks("0 0 * * *", "2024-02-28 06:00", 2) == ["2024-02-29 00:00:00", "2024-03-01 00:00:00"]


def test_day_of_month_and_day_of_week_both_restricted_match_either():
    # "13th or a Friday": 2024-03-01, 08 are Fridays, 2024-03-13 is a Wednesday
    assert ticks("0 0 13 * 5", "2024-02-28 12:00", 5) == [
        "2024-03-01 00:00:00", "2024-03-08 00:00:00", "2024-03-13 00:00:00",
        "2024-03-15 00:00:00", "2024-03-22 00:00:00"]


def test_a_day_field_that_is_star_makes_the_other_one_decide_alone():
    assert ticks("0 0 13 * *", "2024-02-28 12:00", 2) == ["2024-03-13 00:00:00", "2024-04-13 00:00:00"]
    assert ticks("0 0 * * 5", "2024-02-28 12:00", 2) == ["2024-03-01 00:00:00", "2024-03-08 00:00:00"]


def test_a_day_field_starting_with_star_step_is_unrestricted_as_in_vixie_cron():
    # both must match: days 1, 11, 21, 31 that are Mondays (2024-01-01 and 2024-03-11 are Mondays)
    assert ticks("0 0 */10 * 1", "2024-01-01 00:00", 2) == ["2024-03-11 00:00:00", "2024-04-01 00:00:00"]


def test_month_restriction_skips_whole_months():
    assert ticks("30 6 * 3,9 1", "2024-03-26 00:00", 3) == [
        "2024-09-02 06:30:00", "2024-09-09 06:30:00", "2024-09-16 06:30:00"]


@pytest.mark.parametrize("expr", [
    "*/7 */5 * * *", "0 0 13 * 5", "0 0 */10 * 1", "30 2 1-7 * 0", "0 0 31 * *", "5 4 * 2 2,4",
    "0 0 29 * 1-3", "59 23 * * 6",
])
@pytest.mark.parametrize("start", ["2024-01-30 23:59:30", "2023-02-27 04:05", "2024-12-25 00:00"])
def test_next_after_agrees_with_a_minute_by_minute_search(expr, start):
    assert iso(parse_cron(expr).next_after(at(start))) == iso(brute_force_next(expr, at(start)))


@pytest.mark.parametrize("expr", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 */2"])
def test_a_cron_that_never_fires_raises(expr):
    cron = parse_cron(expr)
    with pytest.raises(ValueError, match="never fires"):
        cron.next_after(at("2024-01-01 00:00"))


def test_a_rare_but_possible_cron_still_fires():
    # Feb 29 that is a Sunday (day-of-week "*/7" is unrestricted, so both must match)
    assert ticks("0 0 29 2 */7", "2024-01-01 00:00", 1) == ["2032-02-29 00:00:00"]


def test_next_after_is_fast_for_yearly_expressions():
    import time
    cron = parse_cron("59 23 31 12 *")
    start = time.perf_counter()
    for _ in range(100):
        cron.next_after(at("2024-01-01 00:00"))
    assert time.perf_counter() - start < 1.0


def test_matches_tells_whether_a_minute_fires():
    cron = parse_cron("0 0 13 * 5")
    assert cron.matches(at("2024-03-13 00:00:59"))
    assert cron.matches(at("2024-03-01 00:00"))
    assert not cron.matches(at("2024-03-02 00:00"))
    assert not cron.matches(at("2024-03-13 00:01"))


# --- intervals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("90m", 5400), (" 6h ", 21600)])
def test_parse_interval_reads_a_number_and_a_unit(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", [
    "0m", "0s", "15", "m", "15x", "1.5h", "-5m", "15 m", "15M", "1h30m", "", None])
def test_parse_interval_rejects_zero_missing_units_and_anything_else(text):
    with pytest.raises(ValueError, match="interval"):
        parse_interval(text)


def test_interval_ticks_are_aligned_to_the_epoch():
    assert iso(next_tick(None, "15m", at("2024-03-06 10:07:13"))) == "2024-03-06 10:15:00"
    assert iso(next_tick(None, "15m", at("2024-03-06 10:15:00"))) == "2024-03-06 10:30:00"
    assert iso(next_tick(None, "15m", at("2024-03-06 23:59:00"))) == "2024-03-07 00:00:00"
    assert iso(next_tick(None, "1d", at("2024-03-06 10:07:13"))) == "2024-03-07 00:00:00"
    assert iso(next_tick(None, "6h", at("2024-03-06 13:00"))) == "2024-03-06 18:00:00"
    assert next_tick(None, "7m", 0.0) == 420.0
    assert next_tick(None, "7m", 419.9) == 420.0
    assert next_tick(None, "7m", 420.0) == 840.0


def test_next_tick_is_the_earliest_of_cron_and_interval():
    assert iso(next_tick("0 3 * * *", "6h", at("2024-03-06 01:00"))) == "2024-03-06 03:00:00"
    assert iso(next_tick("0 3 * * *", "6h", at("2024-03-06 03:00"))) == "2024-03-06 06:00:00"
    assert iso(next_tick("0 3 * * *", "6h", at("2024-03-06 19:00"))) == "2024-03-07 00:00:00"
    assert iso(next_tick("0 6 * * *", "6h", at("2024-03-06 05:00"))) == "2024-03-06 06:00:00"
    assert iso(next_tick("0 3 * * *", None, at("2024-03-06 19:00"))) == "2024-03-07 03:00:00"


def test_next_tick_needs_at_least_one_rule():
    with pytest.raises(ValueError, match="cron expression, an interval, or both"):
        next_tick(None, None, 0.0)
    with pytest.raises(ValueError, match="cron expression, an interval, or both"):
        next_tick("", "", 0.0)


def test_next_tick_reports_a_never_firing_cron_even_with_an_interval():
    with pytest.raises(ValueError, match="never fires"):
        next_tick("0 0 31 2 *", "1h", 0.0)


# --- is_due ----------------------------------------------------------------------------------------------

def test_a_new_schedule_is_due_at_once():
    assert is_due(None, "1d", None, at("2024-03-06 10:07")) is True
    assert is_due("0 3 1 1 *", None, None, at("2024-03-06 10:07")) is True


def test_a_new_schedule_with_a_malformed_rule_raises_instead_of_being_due():
    with pytest.raises(ValueError, match="cron hour field"):
        is_due("0 25 * * *", None, None, at("2024-03-06 10:07"))
    with pytest.raises(ValueError, match="interval"):
        is_due(None, "5 minutes", None, at("2024-03-06 10:07"))


def test_not_due_before_the_next_tick():
    assert is_due(None, "15m", at("2024-03-06 10:00"), at("2024-03-06 10:14:59")) is False
    assert is_due("0 3 * * *", None, at("2024-03-06 03:00"), at("2024-03-07 02:59:59")) is False


def test_due_exactly_on_a_tick():
    assert is_due(None, "15m", at("2024-03-06 10:00"), at("2024-03-06 10:15")) is True
    assert is_due("0 3 * * *", None, at("2024-03-06 03:00"), at("2024-03-07 03:00")) is True


def test_not_due_again_at_the_instant_it_ran():
    assert is_due(None, "15m", at("2024-03-06 10:15"), at("2024-03-06 10:15")) is False


def test_missed_ticks_after_downtime_make_it_due_once_as_a_plain_yes():
    # down from Monday to Friday: dozens of ticks missed, the answer is just True
    assert is_due(None, "1h", at("2024-03-04 10:00"), at("2024-03-08 09:30")) is True
    assert is_due("0 3 * * *", None, at("2024-03-04 03:00"), at("2024-03-08 09:30")) is True
    # after that catch-up run, the next one waits for the next tick
    assert is_due(None, "1h", at("2024-03-08 09:30"), at("2024-03-08 09:59")) is False
    assert is_due(None, "1h", at("2024-03-08 09:30"), at("2024-03-08 10:00")) is True


def test_not_due_when_the_clock_went_backwards():
    assert is_due(None, "15m", at("2024-03-06 10:00"), at("2024-03-06 09:00")) is False
    assert is_due("* * * * *", None, at("2024-03-06 10:00"), at("2024-03-05 10:00")) is False


def test_due_uses_the_union_of_cron_and_interval():
    last = at("2024-03-06 01:00")
    assert is_due("0 3 * * *", "6h", last, at("2024-03-06 02:59")) is False
    assert is_due("0 3 * * *", "6h", last, at("2024-03-06 03:00")) is True
    assert is_due("0 7 * * *", "6h", last, at("2024-03-06 06:00")) is True
