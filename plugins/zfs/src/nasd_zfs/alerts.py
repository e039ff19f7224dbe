"""A pool's health as conditions that say what to do, and as status fields: pool state, devices and their error
counts, permanent data errors, capacity against spec.capacity, and the last scrub's age and result.

Every condition here is True while something is wrong (as ``Degraded`` and ``Full`` are) and False with a
reason once it is not, so a change of status or reason is a transition worth an Event. Pure functions.
"""

from __future__ import annotations

from typing import Any

from nasd.plugin import ConditionChange, Plan, Problem, ZPool

from .health import DeviceHealth, PoolHealth, ScanInfo
from .scrub import NO_IO, ScrubBook, ScrubDecision, decide, iso, scrub_action

#: at most this many devices or files named in one message
NAMED = 5


def human(n: int | float | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(0, round(seconds / 60))} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def _where(d: DeviceHealth) -> str:
    inside = d.parent if d.parent and d.depth > 1 else None
    where = f" in {inside}" if inside else ""
    return f"{d.name}{where}" + (f" ({d.section})" if d.section else "")


def _advice(pool: str, d: DeviceHealth) -> str:
    if d.state == "OFFLINE":
        return f"{_where(d)} is OFFLINE: `zpool online {pool} {d.name}` brings it back"
    if d.state in ("UNAVAIL", "REMOVED") or "cannot open" in d.note:
        return f"{_where(d)} is {d.state}{' (' + d.note + ')' if d.note else ''}: reconnect it or put its file back"
    if d.state == "FAULTED":
        return f"{_where(d)} is FAULTED{' (' + d.note + ')' if d.note else ''}: it is failing"
    return f"{_where(d)} is {d.state}"


def state_condition(pool: ZPool, health: PoolHealth) -> tuple[ConditionChange, Problem | None]:
    """``Degraded`` (True unless ONLINE), naming each device that is not ONLINE and what to do; a pool that
    cannot do I/O (FAULTED, UNAVAIL, SUSPENDED) is also not Ready."""
    name, state = pool.name, health.state
    if state == "ONLINE":
        return ConditionChange("Degraded", False, "Healthy", f"pool {name} is ONLINE"), None
    bad = [d for d in health.devices if d.leaf and d.state not in ("ONLINE", "AVAIL", "INUSE")]
    named = "; ".join(_advice(name, d) for d in bad[:NAMED]) + (f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else "")
    replace = ("or name a new device in its place in spec.vdevs (nasd then runs `zpool replace`)")
    if state == "DEGRADED":
        message = (f"pool {name} is DEGRADED: {named or 'a device is not ONLINE'}; {replace}. The pool works without "
                   "full redundancy meanwhile: one more failure in the same vdev can lose data")
        return ConditionChange("Degraded", True, "PoolDegraded", message), None
    which = named or f"see `zpool status {name}`"
    if state == "SUSPENDED":
        message = (f"pool {name} is SUSPENDED: ZFS stopped all I/O to it after device failures ({which}); fix or "
                   f"reconnect the devices, then `zpool clear {name}` resumes it")
    else:
        message = (f"pool {name} is {state}: its data cannot be read or written ({which}); reconnect the missing "
                   f"devices (then `zpool clear {name}`), {replace}, or restore the pool from backup")
    reason = "Pool" + state.capitalize()
    return ConditionChange("Degraded", True, reason, message), Problem("PoolUnhealthy", message)


def device_condition(pool: ZPool, health: PoolHealth) -> ConditionChange:
    """``DeviceErrors``: READ/WRITE/CKSUM counts of each device that has any, by name."""
    name = pool.name
    bad = [d for d in health.devices if d.leaf and d.errors]
    if not bad:
        return ConditionChange("DeviceErrors", False, "NoErrors", f"no device of pool {name} has read, write or "
                               "checksum errors")
    totals = {"ReadErrors": sum(d.read for d in bad), "WriteErrors": sum(d.write for d in bad),
              "ChecksumErrors": sum(d.cksum for d in bad)}
    reason = "DeviceFaulted" if any(d.state == "FAULTED" for d in bad) else max(totals, key=lambda k: totals[k])
    parts = []
    for d in bad[:NAMED]:
        counts = ", ".join(f"{n} {what}" for n, what in ((d.read, "read"), (d.write, "write"), (d.cksum, "checksum"))
                           if n)
        repaired = f", {human(d.repaired)} repaired by the last scrub" if d.repaired else ""
        parts.append(f"{_where(d)}: {counts} errors{repaired}")
    more = f"; and {len(bad) - NAMED} more devices" if len(bad) > NAMED else ""
    scan = health.scan
    if not any(d.repaired for d in bad) and scan.kind == "scrub" and scan.state == "finished" and scan.repaired:
        # (OpenZFS says what a finished scrub repaired on its scan line only, not beside each device)
        more += f"; {human(scan.repaired)} repaired by the last scrub in the whole pool"
    message = (f"pool {name}: {'; '.join(parts)}{more}. ZFS repaired what it could from redundancy "
               f"(DataErrors says what it could not). If the errors come back after `zpool clear {name}`, the device "
               "is failing: name a new device in its place in spec.vdevs")
    return ConditionChange("DeviceErrors", True, reason, message)


def data_condition(pool: ZPool, health: PoolHealth) -> ConditionChange:
    """``DataErrors``: permanent errors ZFS could not repair, with the files when known."""
    name = pool.name
    if not health.data_errors:
        return ConditionChange("DataErrors", False, "NoDataErrors", f"pool {name} has no known data errors")
    files = sorted(health.error_files, key=lambda f: f.startswith("<"))  # (the files a user can restore first)
    listed = (f" in {', '.join(files[:NAMED])}" + (f" and {len(files) - NAMED} more" if len(files) > NAMED else "")) \
        if files else ""
    metadata = any(f.startswith("<metadata>") for f in files)
    message = (f"pool {name} has {health.data_errors} permanent data errors that ZFS could not repair{listed} "
               f"(`zpool status -v {name}` lists them): restore those files from a snapshot or a backup, or delete them; "
               f"a file leaves the list once a scrub finds it gone (spec.scrub, or `zpool scrub {name}`), then "
               f"`zpool clear {name}` resets the counters"
               + ("; <metadata> entries are damaged pool metadata: copy the data off and recreate the pool from a "
                  "backup" if metadata else ""))
    return ConditionChange("DataErrors", True, "PermanentErrors", message)


def capacity_condition(pool: ZPool, used: int | None, avail: int | None) -> ConditionChange | None:
    """``CapacityHigh`` from spec.capacity's thresholds (None when the sizes are not known)."""
    if used is None or avail is None or used + avail == 0:
        return None
    percent = 100 * used / (used + avail)
    warn, crit = pool.spec.capacity.warningPercent, pool.spec.capacity.criticalPercent
    said = (f"pool {pool.name} is {percent:.0f}% full ({human(used)} used, {human(avail)} free; spec.capacity warns at "
            f"{warn}%, critical at {crit}%)")
    if percent < warn:
        return ConditionChange("CapacityHigh", False, "CapacityOK", said)
    todo = ("free space (delete files, or old snapshots: `zfs list -t snapshot -o name,used -s used`) or add a vdev "
            "to spec.vdevs")
    if percent >= crit:
        return ConditionChange("CapacityHigh", True, "CapacityCritical",
                               f"{said}: writes will soon fail with 'No space left on device', and ZFS is slow this "
                               f"full; {todo} now")
    return ConditionChange("CapacityHigh", True, "CapacityWarning",
                           f"{said}: ZFS slows down and fragments as a pool fills; {todo}")


def scrub_conditions(pool: ZPool, health: PoolHealth, last: ScanInfo | None, book: ScrubBook,
                     decision: ScrubDecision, now: float) -> tuple[list[ConditionChange], list[str]]:
    """``ScrubErrors`` (the last scrub's result) always; ``ScrubOverdue`` (its age) only with spec.scrub.
    Returns (conditions, condition types that do not apply)."""
    name = pool.name
    out: list[ConditionChange] = []
    removed: list[str] = []
    if last is None:
        removed.append("ScrubErrors")
    else:
        when = f"ended {iso(last.ended)}" if last.ended else "the last one"
        if last.errors:
            out.append(ConditionChange("ScrubErrors", True, "Unrepaired", (
                f"the last scrub of pool {name} ({when}) found {last.errors} errors it could not repair: see "
                "condition DataErrors for the files and what to do")))
        elif last.repaired:
            out.append(ConditionChange("ScrubErrors", True, "Repaired", (
                f"the last scrub of pool {name} ({when}) repaired {human(last.repaired)}: a device returned bad data "
                "and ZFS rewrote it from redundancy (condition DeviceErrors names the device); no data was lost. "
                "The next scrub that repairs nothing clears this")))
        else:
            out.append(ConditionChange("ScrubErrors", False, "Clean",
                                       f"the last scrub of pool {name} ({when}) repaired nothing and found no errors"))
    spec = pool.spec.scrub
    if spec is None:
        return out, removed + ["ScrubOverdue"]
    failed = book.failed.get(name)
    nxt = f"; the next is due {iso(decision.due)}" if decision.due and not decision.start else ""
    if failed is not None:
        out.append(ConditionChange("ScrubOverdue", True, "ScrubFailed", (
            f"`zpool scrub {name}` failed at {iso(failed[0])}: {failed[1]}; nasd tries again at the next tick of "
            f"spec.scrub.schedule{nxt}")))
        return out, removed
    if health.scan.state == "paused":  # (OpenZFS `zpool scrub -p`): nothing else starts until it is resumed
        old = last is None or last.ended is None or now - last.ended > spec.maxAgeDays * 86400
        at = f" at {health.scan.percent:.1f}%" if health.scan.percent is not None else ""
        out.append(ConditionChange("ScrubOverdue", old, "ScrubPaused", (
            f"a scrub of pool {name} is paused{at}: `zpool scrub {name}` resumes it (nasd starts no other scrub "
            f"meanwhile){'; the last finished scrub is older than spec.scrub.maxAgeDays' if old else ''}")))
        return out, removed
    if health.scan.running:
        done = f"{health.scan.percent:.1f}% done" if health.scan.percent is not None else "in progress"
        out.append(ConditionChange("ScrubOverdue", False, "Scrubbing" if health.scan.kind == "scrub" else "Resilvering",
                                   f"a {health.scan.kind} of pool {name} runs now ({done})"))
        return out, removed
    if last is None or last.ended is None:
        why = f"pool {name} is {health.state}: it cannot be scrubbed" if health.state in NO_IO else \
            f"pool {name} has no finished scrub yet{'; one starts now' if decision.start else nxt}"
        out.append(ConditionChange("ScrubOverdue", False, "NotScrubbedYet", why))
        return out, removed
    age = now - last.ended
    if age > spec.maxAgeDays * 86400:
        out.append(ConditionChange("ScrubOverdue", True, "ScrubTooOld", (
            f"the last scrub of pool {name} ended {_ago(age)} ago ({iso(last.ended)}), more than spec.scrub.maxAgeDays "
            f"({spec.maxAgeDays}){'; one starts now' if decision.start else nxt}. If scrubs do not finish, see "
            f"`zpool status {name}`")))
    else:
        out.append(ConditionChange("ScrubOverdue", False, "Scrubbed", (
            f"the last scrub of pool {name} ended {_ago(max(age, 0))} ago ({iso(last.ended)})"
            f"{'; one starts now' if decision.start else nxt}")))
    return out, removed


def scan_status(scan: ScanInfo | None) -> dict[str, Any] | None:
    if scan is None or scan.kind is None:
        return None
    return {"kind": scan.kind, "state": scan.state, "percentDone": scan.percent, "secondsLeft": scan.seconds_left,
            "startTime": iso(scan.started), "endTime": iso(scan.ended), "errors": scan.errors,
            "repairedBytes": scan.repaired}


def health_status(health: PoolHealth, last: ScanInfo | None, decision: ScrubDecision) -> dict[str, Any]:
    """The ZPoolStatus fields of the pool's health."""
    return {
        "devices": [{"name": d.name, "vdev": d.parent if d.depth > 1 or d.section else None, "state": d.state, "read": d.read,
                     "write": d.write, "checksum": d.cksum, "note": d.note or None}
                    for d in health.devices if d.leaf],
        "dataErrors": health.data_errors,
        "errorFiles": health.error_files[:100] or None,
        "scan": scan_status(health.scan),
        "lastScrub": scan_status(last),
        "nextScrub": iso(decision.due if not decision.start else decision.wake) if decision.due else None,
    }


#: a pool whose plan has one of these problems is not scrubbed
NO_SCRUB_PROBLEMS = ("PoolUnhealthy", "UnreadableProperties")


def pool_care(plan: Plan, pool: ZPool, health: PoolHealth | None, used: int | None, avail: int | None,
              book: ScrubBook, now: float) -> float | None:
    """Add the pool's health conditions, status fields and (when due) the scrub to ``plan``. Returns when the
    next pass must come for a scrub that is not due yet (None: nothing to plan)."""
    if health is None:  # (a pool still to be created or imported)
        return None
    book.load()
    book.seen(pool.name, health.scan)
    last = book.last_scrub(pool.name, health.scan)
    decision = decide(pool, health, book, now)
    degraded, problem = state_condition(pool, health)
    plan.conditions = [c for c in plan.conditions if c.type != "Degraded"]
    plan.conditions += [degraded, device_condition(pool, health), data_condition(pool, health)]
    if problem is not None and (plan.problem is None or plan.problem.reason == "PoolUnhealthy"):
        plan.problem = problem  # (plan.py's own says only the state)
    capacity = capacity_condition(pool, used, avail)
    if capacity is not None:
        plan.conditions.append(capacity)
    conditions, removed = scrub_conditions(pool, health, last, book, decision, now)
    plan.conditions += conditions
    plan.removed_conditions += removed
    plan.status.update(health_status(health, last, decision))
    if decision.start and (plan.problem is None or plan.problem.reason not in NO_SCRUB_PROBLEMS):
        plan.actions.append(scrub_action(pool.name, book, decision, now))
    return decision.wake
