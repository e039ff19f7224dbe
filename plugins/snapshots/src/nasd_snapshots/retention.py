"""Which snapshots a retention policy keeps: a pure function of names, times and the policy.

The rules are those of ``restic forget --keep-*``: ``keepLast`` keeps the newest N;
each grid rule (hourly, daily, weekly, monthly, yearly) walks the snapshots from
newest to oldest and keeps the newest snapshot of each UTC hour / day / ISO week
(Monday start) / month / year, until it has kept N of them. N counts buckets that
have snapshots, so downtime does not shorten the history kept. A snapshot is kept
when any rule keeps it; all others are pruned.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Callable, Iterable

__all__ = ["Policy", "RetentionResult", "plan_retention", "RULES"]

#: the rules in the order they are reported
RULES = ("keepLast", "hourly", "daily", "weekly", "monthly", "yearly")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Policy:
    """How many snapshots (keepLast) or buckets (the grid rules) to keep; 0 disables a rule.

    A policy whose counts are all 0 keeps everything.
    """

    keepLast: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {f.name} must be a whole number >= 0, not {value!r}")

    def keeps_everything(self) -> bool:
        """True when every count is 0: nothing is pruned."""
        return self.max_kept() == 0

    def max_kept(self) -> int:
        """Upper bound of the snapshots kept (not counting future-dated ones): the sum of the counts.

        0 when :meth:`keeps_everything`, which then means unbounded.
        """
        return self.keepLast + self.hourly + self.daily + self.weekly + self.monthly + self.yearly


@dataclass
class RetentionResult:
    keep: list[str]  # names, newest first
    prune: list[str]  # names, oldest first
    #: for each rule with a count > 0, how many snapshots that rule keeps (a snapshot
    #: kept by several rules counts for each of them)
    buckets: dict[str, int] = field(default_factory=dict)


def _month_key() -> Callable[[float], int]:
    """``t -> year * 12 + month - 1`` (UTC), calling ``gmtime`` only when ``t`` leaves the last month seen."""
    lo = hi = 0.0
    key = 0

    def month_key(t: float) -> int:
        nonlocal lo, hi, key
        if lo <= t < hi:
            return key
        tm = _time.gmtime(t)
        y, m = tm.tm_year, tm.tm_mon
        lo = (date(y, m, 1).toordinal() - _EPOCH_ORDINAL) * 86400.0
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        hi = (date(ny, nm, 1).toordinal() - _EPOCH_ORDINAL) * 86400.0
        key = y * 12 + m - 1
        return key

    return month_key


def _grid(times: list[float], keep: list[bool], count: int, bucket: Callable[[float], float]) -> int:
    """Keep the newest snapshot of each bucket until ``count`` buckets are kept; returns how many were kept.

    ``times`` is newest first; ``bucket(t)`` names the hour, day, week, month or year of ``t``.
    """
    kept = 0
    last = None
    for i, t in enumerate(times):
        b = bucket(t)
        if b != last:
            keep[i] = True
            last = b
            kept += 1
            if kept == count:
                break
    return kept


def plan_retention(snapshots: Iterable[tuple[str, float]], policy: Policy, now: float) -> RetentionResult:
    """Split snapshots ``(name, epoch seconds UTC)`` into those the policy keeps and those to prune.

    - Snapshots are ordered newest first; equal times by name, descending.
    - A policy whose counts are all 0 keeps everything (``prune`` is empty, ``buckets`` too).
    - Snapshots dated after ``now`` (the clock jumped back) are always kept and count
      toward no rule.
    - ``keepLast`` N keeps the newest N. ``hourly`` / ``daily`` / ``weekly`` / ``monthly`` /
      ``yearly`` N keep the newest snapshot of each of the newest N UTC hours / days /
      ISO weeks (Monday to Sunday) / months / years that have a snapshot.
    - A snapshot is kept if any rule keeps it.

    ``keep`` is newest first, ``prune`` oldest first; ``buckets`` says, for each rule
    with a count > 0, how many snapshots that rule keeps.
    """
    ordered = sorted(((t, name) for name, t in snapshots), reverse=True)
    if policy.keeps_everything():
        return RetentionResult(keep=[name for _, name in ordered], prune=[], buckets={})

    # future-dated snapshots sort first: they are kept and the rules start after them
    nfuture = 0
    for t, _ in ordered:
        if t <= now:
            break
        nfuture += 1
    past = ordered[nfuture:]
    times = [t for t, _ in past]
    keep = [False] * len(past)
    buckets: dict[str, int] = {}

    if policy.keepLast:
        n = min(policy.keepLast, len(past))
        keep[:n] = [True] * n
        buckets["keepLast"] = n
    if policy.hourly:
        buckets["hourly"] = _grid(times, keep, policy.hourly, lambda t: t // 3600)
    if policy.daily:
        buckets["daily"] = _grid(times, keep, policy.daily, lambda t: t // 86400)
    if policy.weekly:
        # 1970-01-01 was a Thursday: shifting by 3 days starts the weeks on Mondays
        buckets["weekly"] = _grid(times, keep, policy.weekly, lambda t: (t // 86400 + 3) // 7)
    if policy.monthly:
        buckets["monthly"] = _grid(times, keep, policy.monthly, _month_key())
    if policy.yearly:
        month_key = _month_key()
        buckets["yearly"] = _grid(times, keep, policy.yearly, lambda t: month_key(t) // 12)

    kept = [name for t, name in ordered[:nfuture]]
    kept += [name for (t, name), k in zip(past, keep) if k]
    prune = [name for (t, name), k in zip(past, keep) if not k]
    prune.reverse()
    return RetentionResult(keep=kept, prune=prune, buckets=buckets)
