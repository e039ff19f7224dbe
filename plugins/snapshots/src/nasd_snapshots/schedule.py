"""Planning one ZSnapshotSchedule: a pure function of the schedule, the snapshot listing and the time.

It decides whether a tick is due (and the snapshot's name), which of the snapshots the schedule
made the retention policy prunes, whether a changed policy must wait for confirmation, and the
status. It runs nothing: the plugin turns the decision into actions.
"""

from __future__ import annotations

import calendar
import hashlib
import datetime as dt
import re
import time
from dataclasses import dataclass, field

from nasd.plugin import (ConditionChange, SnapshotInfo, SnapshotListing, ZSnapshotSchedule, is_due, next_tick,
                         parse_interval)

from .retention import RULES, Policy, RetentionResult, plan_retention

#: the user property that marks a snapshot as made by a schedule (its value: the schedule's name)
SCHEDULE_PROPERTY = "nasd.io:schedule"
#: the annotation that confirms a policy change pruning more than the threshold (value: how many may go)
CONFIRM_ANNOTATION = "nasd.io/confirm-prune"
#: a tick this recent names the snapshot with its scheduled time; later (catch-up) with the actual time
ON_TIME_SECONDS = 60
#: Windows shows no Previous Versions at all when a share has more snapshots than this
WINDOWS_MAX_VERSIONS = 512

_CODES = {"Y": r"(?P<Y>\d{4})", "m": r"(?P<m>\d{2})", "d": r"(?P<d>\d{2})", "H": r"(?P<H>\d{2})",
          "M": r"(?P<M>\d{2})", "S": r"(?P<S>\d{2})"}


def name_pattern(fmt: str) -> re.Pattern[str]:
    """A regular expression matching exactly the names ``fmt`` produces, capturing the time fields."""
    out = ""
    for literal, code in re.findall(r"([^%]*)(?:%(.))?", fmt):
        out += re.escape(literal) + (_CODES[code] if code else "")
    return re.compile(f"^{out}$")


def name_time(pattern: re.Pattern[str], name: str) -> float | None:
    """The UTC time a schedule-made name says, or None when the name does not have the format."""
    m = pattern.match(name)
    if not m:
        return None
    g = m.groupdict()
    try:
        return float(calendar.timegm(dt.datetime(int(g["Y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]),
                                                 int(g.get("S") or 0)).timetuple()))
    except ValueError:
        return None


def latest_tick(cron: str | None, interval: str | None, now: float) -> float | None:
    """The latest tick at or before ``now`` within the last ON_TIME_SECONDS (None: none that recent)."""
    found: list[float] = []
    if interval:
        step = parse_interval(interval)
        found.append(float(int(now // step) * step))
    if cron:
        t = next_tick(cron, None, now - ON_TIME_SECONDS)  # cron ticks are whole minutes: at most one here
        if t <= now:
            found.append(t)
    latest = max(found, default=None)
    return latest if latest is not None and now - latest <= ON_TIME_SECONDS else None


def effective_last_run(status_last: float | None, own: list[float], now: float) -> tuple[float | None, bool]:
    """When the schedule last ran, by the clock as it reads ``now``, and whether the clock is behind the
    schedule's history (it jumped back). ``status_last``: ``status.lastRun``; ``own``: the times in the names
    of the snapshots the schedule made.

    - In step (nothing dated after ``now``): the later of the status and the newest snapshot (a snapshot
      taken just before a crash that lost the status counts).
    - The status dated after ``now``: the clock went back since the last run. The schedule goes on from
      ``now`` (it is not due at once, so no burst, and is due at the next tick after ``now``, not only
      once the clock has caught up with its newest snapshot); the plan writes ``now`` as ``lastRun``.
    - Snapshots dated after ``now`` but the status not (the run after such a jump): the status, alone.
      The names the clock has passed again were taken before the jump, not since: they do not count.
    """
    newest = max(own, default=None)
    if status_last is not None and status_last > now:
        return now, True
    if newest is not None and newest > now:
        return (status_last if status_last is not None else now), True
    if status_last is None or (newest is not None and newest > status_last):
        return newest, False
    return status_last, False


def policy_token(retention: dict[str, int]) -> str:
    """A short fingerprint of a retention policy, for confirmations that name the policy they approve."""
    text = ",".join(f"{k}={int(retention.get(k, 0))}" for k in RULES)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _confirms(annotation: str, pending: int, retention: dict[str, int]) -> bool:
    """``"<count>/<policy token>"``: up to count snapshots may go, for exactly this policy."""
    count, _, token = annotation.partition("/")
    return count.isdigit() and int(count) >= pending and token == policy_token(retention)


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def policy_of(retention: dict[str, int] | None) -> Policy:
    return Policy(**{k: int(v) for k, v in (retention or {}).items() if k in RULES})


def targets(schedule: ZSnapshotSchedule, roots: list[str], listing: SnapshotListing) -> list[str]:
    """The ZFS datasets the schedule snapshots: ``roots`` (its ZDatasets), with ``recursive`` every file
    system below them, less the excluded subtrees (``exclude`` is relative to the pool)."""
    existing = set(listing.filesystems)
    chosen = [r for r in roots if r in existing]
    if schedule.spec.recursive:
        chosen = [fs for fs in listing.filesystems if any(fs == r or fs.startswith(r + "/") for r in roots)]
    excluded = {f"{r.split('/', 1)[0]}/{e}" for r in roots for e in schedule.spec.exclude}
    return sorted(fs for fs in dict.fromkeys(chosen)
                  if not any(fs == x or fs.startswith(x + "/") for x in excluded))


def whole_subtrees(datasets: list[str], listing: SnapshotListing) -> list[str] | None:
    """The roots when ``datasets`` is exactly a union of whole subtrees (``zfs snapshot -r`` then takes
    them all), else None."""
    wanted = set(datasets)
    roots = [d for d in datasets if not any(d.startswith(o + "/") for o in wanted)]
    for r in roots:
        below = {fs for fs in listing.filesystems if fs == r or fs.startswith(r + "/")}
        if not below <= wanted:
            return None
    return sorted(roots)


@dataclass
class Decision:
    """What one pass does for a schedule, and the status it reports."""

    #: the snapshot to take now: its name, the datasets, and whether they are given as -r roots
    take: str | None = None
    take_datasets: list[str] = field(default_factory=list)
    take_recursive: bool = False
    take_time: float | None = None
    #: full snapshot names to destroy
    prune: list[str] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    #: conditions besides Ready
    conditions: list[ConditionChange] = field(default_factory=list)
    #: condition types to remove
    removed: list[str] = field(default_factory=list)
    problem: tuple[str, str] | None = None


def plan_schedule(schedule: ZSnapshotSchedule, roots: list[str], listing: SnapshotListing, now: float,
                  shared: set[str] | None = None) -> Decision:
    """Decide a schedule's pass. ``roots``: the ZFS names of its ZDatasets; ``shared``: datasets with an SMB
    share (for the Previous Versions warning)."""
    spec = schedule.spec
    decision = Decision()
    datasets = targets(schedule, roots, listing)
    if not datasets:
        decision.problem = ("DatasetNotFound", f"none of {', '.join(roots)} exists")
        return decision
    pattern = name_pattern(spec.format)
    wanted = set(datasets)
    own: dict[str, list[tuple[SnapshotInfo, float]]] = {d: [] for d in datasets}
    names_by_dataset: dict[str, set[str]] = {d: set() for d in datasets}
    last_run = parse_iso(schedule.status.lastRun)
    newest: tuple[float, str] | None = None
    times: dict[str, float | None] = {}  # a recursive schedule has each name on every dataset: parse it once
    for s in listing.snapshots:
        if s.dataset not in wanted:
            continue
        names_by_dataset[s.dataset].add(s.name)
        if s.properties.get(SCHEDULE_PROPERTY) != schedule.name:
            continue  # made by hand or by someone else: never touched
        t = times[s.name] if s.name in times else times.setdefault(s.name, name_time(pattern, s.name))
        if t is None:
            continue
        own[s.dataset].append((s, t))
        if newest is None or t > newest[0]:
            newest = (t, s.name)
    own_times = [t for items in own.values() for _, t in items]
    status_last = last_run
    last_run, behind = effective_last_run(status_last, own_times, now)
    if behind:
        ahead = max(own_times + ([status_last] if status_last is not None else []))
        decision.conditions.append(ConditionChange(
            "ClockBehind", True, "ClockWentBack",
            f"the clock ({iso(now)}) is behind this schedule's newest snapshot ({iso(ahead)}): it went back. "
            "Snapshots go on at the schedule's ticks from now; those dated after now are kept and counted by no "
            "retention rule until the clock passes them. If the clock was wrong before, nothing is to be done; "
            "if it is wrong now, set it right (e.g. enable NTP)"))
    elif schedule.status.conditions and any(c.type == "ClockBehind" for c in schedule.status.conditions):
        decision.removed.append("ClockBehind")

    # -- the tick ----------------------------------------------------------------------------
    cron, interval = spec.schedule.cron, spec.schedule.interval
    if is_due(cron, interval, last_run, now):
        on_time = latest_tick(cron, interval, now)
        when = on_time if on_time is not None and now - on_time <= ON_TIME_SECONDS else float(int(now))
        name = time.strftime(spec.format, time.gmtime(when))
        fresh = [d for d in datasets if name not in names_by_dataset[d]]
        if not fresh and when != float(int(now)):
            # every dataset has the tick's name already (taken before the clock went back, or by hand):
            # name this one by the actual time rather than skip the tick
            when = float(int(now))
            name = time.strftime(spec.format, time.gmtime(when))
            fresh = [d for d in datasets if name not in names_by_dataset[d]]
        if fresh:
            decision.take, decision.take_time = name, when
            roots_r = whole_subtrees(fresh, listing) if len(fresh) > 1 else None
            if roots_r is not None and len(roots_r) < len(fresh):
                decision.take_datasets, decision.take_recursive = roots_r, True
            else:
                decision.take_datasets = fresh
            for d in fresh:
                own[d].append((SnapshotInfo(dataset=d, name=name, created=int(when)), when))
            last_run = when
            newest = (when, name)

    # -- retention -----------------------------------------------------------------------------
    desired_policy = spec.retention.model_dump()
    applied = schedule.status.retentionApplied
    policy = policy_of(desired_policy)
    pending = 0
    results: dict[tuple[Policy, str], RetentionResult] = {}  # (the first pass of a new policy needs it twice)
    if applied != desired_policy:
        new_prune = _prune(own, policy_of(desired_policy), now, results)
        old_prune = _prune(own, policy_of(applied), now, results) if applied is not None else []
        pending = len(set(new_prune) - set(old_prune))
        # the confirmation names the policy it is for: one given for an earlier change approves nothing later
        token = f"{pending}/{policy_token(desired_policy)}"
        if pending <= spec.pruneConfirmThreshold or _confirms(
                schedule.metadata.annotations.get(CONFIRM_ANNOTATION, ""), pending, desired_policy):
            applied, pending = desired_policy, 0
        else:
            policy = policy_of(applied) if applied is not None else Policy()  # (all 0: keeps everything)
            decision.conditions.append(ConditionChange(
                "PolicyChangePending", True, "WaitingForConfirmation",
                f"the new retention would prune {pending} existing snapshots, more than pruneConfirmThreshold "
                f"({spec.pruneConfirmThreshold}); the previous policy stays in effect until you annotate "
                f"{CONFIRM_ANNOTATION}: \"{token}\" (or raise the threshold)",
            ))
    if not pending:
        decision.conditions.append(ConditionChange("PolicyChangePending", False, "Applied",
                                                   "the retention policy is in effect"))

    kept: dict[str, int] = {}
    blocked: list[str] = []
    remaining = 0
    largest = 0
    for d in datasets:
        result = _retention(own, d, policy, now, results)
        for rule, n in result.buckets.items():
            kept[rule] = kept.get(rule, 0) + n
        by_name = {s.name: s for s, _ in own[d]}
        gone = 0
        for name in result.prune:
            s = by_name[name]
            if s.userrefs or s.clones:
                why = f"clone {s.clones[0]}" if s.clones else f"{s.userrefs} hold(s)"
                blocked.append(f"{s.full_name} ({why})")
            else:
                decision.prune.append(s.full_name)
                gone += 1
        count = len(own[d]) - gone
        remaining += count
        largest = max(largest, count + sum(1 for n in names_by_dataset[d] if n not in by_name))
    if blocked:
        decision.conditions.append(ConditionChange(
            "PruneBlocked", True, "HeldOrCloned",
            f"{len(blocked)} snapshots retention would prune are kept because something depends on them: "
            + ", ".join(blocked[:5]) + (" ..." if len(blocked) > 5 else "")
            + "; delete the restore (or clone) or release the hold to let them go",
        ))
    else:
        decision.conditions.append(ConditionChange("PruneBlocked", False, "None", ""))

    # -- Previous Versions: Windows shows none above 512 snapshots on a share --------------------
    if shared and wanted & shared:
        bound = policy.max_kept() if not policy.keeps_everything() else None
        over = max(largest, bound or 0) - WINDOWS_MAX_VERSIONS
        if over > 0:
            what = f"keeps up to {bound}" if bound else "keeps every snapshot"
            decision.conditions.append(ConditionChange(
                "PreviousVersionsTruncated", True, "TooManySnapshots",
                f"retention {what} snapshots per dataset ({largest} now on the largest); Windows shows no "
                f"Previous Versions at all above {WINDOWS_MAX_VERSIONS} on a share: lower the counts by {over}",
            ))
        else:
            decision.conditions.append(ConditionChange("PreviousVersionsTruncated", False, "WithinLimit", ""))

    after = max(now, last_run or now)
    decision.status = {
        "datasets": datasets,
        "lastSnapshot": newest[1] if newest else None,
        "lastRun": iso(last_run) if last_run is not None else None,
        "nextRun": iso(next_tick(cron, interval, after)),
        "snapshots": remaining,
        "kept": kept,
        "pendingPrune": pending,
        "retentionApplied": applied,
    }
    return decision


def _retention(own: dict[str, list[tuple[SnapshotInfo, float]]], dataset: str, policy: Policy, now: float,
               results: dict[tuple[Policy, str], RetentionResult]) -> RetentionResult:
    key = (policy, dataset)
    if key not in results:
        results[key] = plan_retention([(s.name, t) for s, t in own[dataset]], policy, now)
    return results[key]


def _prune(own: dict[str, list[tuple[SnapshotInfo, float]]], policy: Policy, now: float,
           results: dict[tuple[Policy, str], RetentionResult]) -> list[str]:
    out: list[str] = []
    for d in own:
        out += [f"{d}@{n}" for n in _retention(own, d, policy, now, results).prune]
    return out
