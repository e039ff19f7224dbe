"""When a snapshot schedule fires: cron expressions and fixed intervals, always in UTC.

Pure functions, no I/O. Times are float seconds since the Unix epoch; every tick
is a whole UTC minute (cron) or a multiple of the interval since the epoch.

- :func:`parse_cron` / :meth:`Cron.next_after`: standard 5-field cron
  (``minute hour day-of-month month day-of-week``), evaluated in UTC.
- :func:`parse_interval`: ``"15m"`` -> ``900``.
- :func:`next_tick`: the earliest tick of either rule strictly after a time.
- :func:`is_due`: whether a tick lies in ``(last_run, now]``.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

__all__ = ["Cron", "parse_cron", "parse_interval", "next_tick", "is_due"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: (name, lowest, highest) of the five fields, in order
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
#: the most days each month can have (February: in leap years)
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: the Gregorian calendar repeats every 400 years (146097 days, a whole number of weeks),
#: so a cron that has not fired within that span never will
_SEARCH_MONTHS = 400 * 12 + 1

_ITEM = re.compile(r"^(?:(\*)|(\d+)(?:-(\d+))?)(?:/(\d+))?$")
_INTERVAL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; the value sets are sorted tuples.

    ``dom_star`` / ``dow_star`` record whether the day-of-month / day-of-week field
    starts with ``*`` (as in Vixie cron): only when neither does is a day matched
    by EITHER field; otherwise it must match both.
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: tuple[int, ...]
    months: tuple[int, ...]
    dows: tuple[int, ...]  # 0 = Sunday .. 6 = Saturday (7 is folded into 0)
    dom_star: bool
    dow_star: bool

    def _day_matches(self, dom: int, dow: int) -> bool:
        if self.dom_star or self.dow_star:
            return dom in self.doms and dow in self.dows
        return dom in self.doms or dow in self.dows

    def matches(self, t: float) -> bool:
        """Whether the UTC minute containing ``t`` matches the expression."""
        minute = int(t // 60)
        days, minute_of_day = divmod(minute, 1440)
        hour, minute = divmod(minute_of_day, 60)
        d = date.fromordinal(_EPOCH_ORDINAL + days)
        return (minute in self.minutes and hour in self.hours and d.month in self.months
                and self._day_matches(d.day, (days + 4) % 7))  # 1970-01-01 was a Thursday

    def _can_ever_fire(self) -> bool:
        if not (self.dom_star or self.dow_star):
            return True  # either field: some weekday of every week matches
        # both fields must match: a (month, day-of-month) pair must exist; every
        # existing date falls on every weekday within the 400-year cycle
        return any(dom <= _MAX_DAYS[month] for month in self.months for dom in self.doms)

    def _first_time(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The first (hour, minute) of the expression at or after the given one, within a day."""
        hours, minutes = self.hours, self.minutes
        i = bisect_left(hours, hour)
        if i < len(hours) and hours[i] == hour:
            j = bisect_left(minutes, minute)
            if j < len(minutes):
                return hour, minutes[j]
            i += 1
        if i < len(hours):
            return hours[i], minutes[0]
        return None

    def _days(self, year: int, month: int, first: int):
        """Matching days of month >= ``first`` in a month, ascending."""
        weekday, ndays = calendar.monthrange(year, month)  # weekday: Monday = 0
        if self.dow_star and not self.dom_star:
            # the day-of-week field is `*` or `*/N`: usually every day, check it anyway
            if len(self.dows) == 7:
                yield from (d for d in self.doms if first <= d <= ndays)
                return
        sunday_based = (weekday + 1) % 7  # cron weekday of the 1st
        for dom in range(first, ndays + 1):
            if self._day_matches(dom, (sunday_based + dom - 1) % 7):
                yield dom

    def next_after(self, t: float) -> float:
        """The first matching minute strictly after ``t`` (UTC, seconds 0), as epoch seconds.

        Walks month by month and day by day, then through the hours and minutes of
        a matching day: never minute by minute. Raises ``ValueError`` for an
        expression that never fires (e.g. ``0 0 31 2 *``) or a time beyond year 9999.
        """
        if not self._can_ever_fire():
            raise ValueError(f"cron {self.expr!r} never fires: none of its days of month "
                             f"exists in any of its months")
        start = int(t // 60) + 1  # minutes since the epoch
        start_day, minute_of_day = divmod(start, 1440)
        start_hour, start_minute = divmod(minute_of_day, 60)
        try:
            d0 = date.fromordinal(_EPOCH_ORDINAL + start_day)
        except (ValueError, OverflowError):
            raise ValueError(f"cron {self.expr!r}: time {t} is outside years 1-9999") from None
        year, month, first = d0.year, d0.month, d0.day
        months = set(self.months)
        for _ in range(_SEARCH_MONTHS):
            if month in months:
                month_start = date(year, month, 1).toordinal() - _EPOCH_ORDINAL
                for dom in self._days(year, month, first):
                    day = month_start + dom - 1
                    if day == start_day:
                        found = self._first_time(start_hour, start_minute)
                        if found is None:
                            continue
                    else:
                        found = (self.hours[0], self.minutes[0])
                    return float(day * 86400 + found[0] * 3600 + found[1] * 60)
            first = 1
            month += 1
            if month == 13:
                month, year = 1, year + 1
                if year > 9999:
                    break
        raise ValueError(f"cron {self.expr!r} never fires after {t}")


def _parse_field(text: str, name: str, lo: int, hi: int) -> set[int]:
    allowed = f"values must be {lo}-{hi}"
    if not text:
        raise ValueError(f"cron {name} field is empty; {allowed}")
    values: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"cron {name} field {text!r}: malformed item {item!r}; expected '*', N or A-B, "
                             f"optionally followed by /STEP, {allowed}")
        star, a, b, step = m.groups()
        if star:
            first, last = lo, hi
        else:
            first = int(a)
            last = int(b) if b is not None else first
            if b is None and step is not None:
                raise ValueError(f"cron {name} field {text!r}: a /STEP needs '*' or a range A-B, "
                                 f"not a single value ({item!r}); {allowed}")
            if not (lo <= first <= hi and lo <= last <= hi):
                raise ValueError(f"cron {name} field {text!r}: {allowed}")
            if first > last:
                raise ValueError(f"cron {name} field {text!r}: range {item!r} is backwards; {allowed}")
        n = int(step) if step is not None else 1
        if n < 1:
            raise ValueError(f"cron {name} field {text!r}: step must be at least 1 in {item!r}; {allowed}")
        values.update(range(first, last + 1, n))
    return values


def parse_cron(expr: str) -> Cron:
    """Parse a 5-field cron expression (``minute hour day-of-month month day-of-week``).

    Each field is a comma list of ``*``, ``N`` or ``A-B``; ``*`` and ranges take an
    optional ``/STEP``. Day of week is 0-7, 0 and 7 both Sunday. No names
    (``jan``, ``mon``) and no ``@daily``-style macros. If both day fields are
    restricted (neither starts with ``*``), a day matches when either matches.
    Raises ``ValueError`` naming the field and its allowed range.
    """
    if not isinstance(expr, str):
        raise ValueError(f"cron expression must be a string, not {type(expr).__name__}")
    return _parse_cron(expr)


@lru_cache(maxsize=256)
def _parse_cron(expr: str) -> Cron:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron expression {expr!r} must have 5 fields (minute hour day-of-month month "
                         f"day-of-week), it has {len(parts)}")
    sets = [_parse_field(text, name, lo, hi) for text, (name, lo, hi) in zip(parts, _FIELDS)]
    dows = {0 if v == 7 else v for v in sets[4]}
    return Cron(
        expr=" ".join(parts),
        minutes=tuple(sorted(sets[0])),
        hours=tuple(sorted(sets[1])),
        doms=tuple(sorted(sets[2])),
        months=tuple(sorted(sets[3])),
        dows=tuple(sorted(dows)),
        dom_star=parts[2].startswith("*"),
        dow_star=parts[4].startswith("*"),
    )


def parse_interval(s: str) -> int:
    """``"15m"`` -> ``900``: a positive whole number and one unit of s, m, h or d; seconds."""
    m = _INTERVAL.match(s.strip()) if isinstance(s, str) else None
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"interval {s!r}: expected a positive whole number followed by s, m, h or d "
                         f"(e.g. '15m', '1d')")
    return int(m.group(1)) * _UNITS[m.group(2)]


def next_tick(cron: str | Cron | None, interval: str | None, after: float) -> float:
    """The earliest tick of either rule strictly after ``after`` (the union of both rules).

    Interval ticks are multiples of the interval since the Unix epoch, so ``"15m"``
    ticks at :00, :15, :30 and :45 UTC and ``"1d"`` at 00:00 UTC. An empty string
    counts as not given; at least one rule must be given. A cron that never fires
    raises ``ValueError`` even when an interval is also given.
    """
    if not cron and not interval:
        raise ValueError("a schedule needs a cron expression, an interval, or both")
    ticks = []
    if cron:
        c = cron if isinstance(cron, Cron) else parse_cron(cron)
        ticks.append(c.next_after(after))
    if interval:
        step = parse_interval(interval)
        ticks.append(float((after // step + 1) * step))
    return min(ticks)


def is_due(cron: str | Cron | None, interval: str | None, last_run: float | None, now: float) -> bool:
    """Whether a tick lies in ``(last_run, now]``.

    A schedule that never ran is due at once (after its rules are checked: a
    malformed or never-firing one raises ``ValueError``). However many ticks were missed (the
    daemon was down) the answer is just yes. If the clock went backwards
    (``now < last_run``) it is not due.
    """
    if last_run is None:
        next_tick(cron, interval, now)  # a malformed schedule raises rather than being due
        return True
    if now < last_run:
        return False
    return next_tick(cron, interval, last_run) <= now
