"""Prometheus text-format metrics: resources by condition, reconcile durations, commands run, and each ZPool's
health (state, capacity, device errors, data errors, scrubs) from its status."""

from __future__ import annotations

import calendar
import time
from collections import Counter
from typing import Any, Iterable

from .models import Resource, ZPool
from .runner import Runner

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: the states nasd_zpool_state has a series for (1 for the pool's own, 0 for the others)
POOL_STATES = ("ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL", "REMOVED", "SUSPENDED")
#: the pool conditions nasd_zpool_alert reports while True
POOL_ALERTS = ("Degraded", "DeviceErrors", "DataErrors", "CapacityHigh", "Full", "ScrubErrors", "ScrubOverdue")


class Metrics:
    def __init__(self, runner: Runner):
        self.runner = runner
        self.pass_count = 0
        self.pass_sum = 0.0
        self.pass_buckets = Counter()
        self.resources: Counter = Counter()
        self.pools: list[ZPool] = []

    def observe_pass(self, seconds: float) -> None:
        self.pass_count += 1
        self.pass_sum += seconds
        for b in BUCKETS:
            if seconds <= b:
                self.pass_buckets[b] += 1

    def set_resources(self, resources: Iterable[Resource]) -> None:
        resources = list(resources)  # (read twice)
        counts: Counter = Counter()
        for r in resources:
            ready = r.condition("Ready")
            counts[(r.kind, ready.status if ready else "Unknown", ready.reason if ready else "")] += 1
        self.resources = counts
        self.pools = sorted((r for r in resources if isinstance(r, ZPool)), key=lambda r: r.name)

    def render(self) -> str:
        lines = [
            "# HELP nasd_resources Resources by kind and Ready condition.",
            "# TYPE nasd_resources gauge",
        ]
        for (kind, status, reason), n in sorted(self.resources.items()):
            lines.append(f'nasd_resources{{kind="{kind}",ready="{status}",reason="{_esc(reason)}"}} {n}')
        lines += [
            "# HELP nasd_reconcile_duration_seconds Duration of reconcile passes.",
            "# TYPE nasd_reconcile_duration_seconds histogram",
        ]
        for b in BUCKETS:
            lines.append(f'nasd_reconcile_duration_seconds_bucket{{le="{b}"}} {self.pass_buckets[b]}')
        lines.append(f'nasd_reconcile_duration_seconds_bucket{{le="+Inf"}} {self.pass_count}')
        lines.append(f"nasd_reconcile_duration_seconds_sum {self.pass_sum:.6f}")
        lines.append(f"nasd_reconcile_duration_seconds_count {self.pass_count}")
        lines += [
            "# HELP nasd_commands_total Programs run, by program and verb.",
            "# TYPE nasd_commands_total counter",
        ]
        for (program, verb), n in sorted(self.runner.counts.items()):
            lines.append(f'nasd_commands_total{{program="{_esc(program)}",verb="{_esc(verb)}"}} {n}')
        lines += pool_lines(self.pools)
        return "\n".join(lines) + "\n"


def _epoch(iso: str | None) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))) if iso else None
    except (TypeError, ValueError):
        return None


_POOL_HELP = {
    "nasd_zpool_state": "The pool's state as zpool status shows it: 1 for its state, 0 for the others.",
    "nasd_zpool_size_bytes": "Size of the pool's root file system (used + available).",
    "nasd_zpool_free_bytes": "Bytes available in the pool's root file system.",
    "nasd_zpool_capacity_ratio": "Used / size of the pool (spec.capacity thresholds are percents of this).",
    "nasd_zpool_capacity_warning_ratio": "spec.capacity.warningPercent / 100.",
    "nasd_zpool_capacity_critical_ratio": "spec.capacity.criticalPercent / 100.",
    "nasd_zpool_device_state": "Each device of the pool: 1 for the state it is in.",
    "nasd_zpool_device_errors": "READ, WRITE and CKSUM error counts of each device (zpool clear resets them).",
    "nasd_zpool_data_errors": "Permanent data errors ZFS could not repair.",
    "nasd_zpool_scrub_in_progress": "1 while a scrub runs (or is paused).",
    "nasd_zpool_resilver_in_progress": "1 while a resilver runs.",
    "nasd_zpool_scan_progress_ratio": "How far the running scrub or resilver is (0-1).",
    "nasd_zpool_scan_seconds_left": "Time left of the running scrub or resilver, as zpool estimates it.",
    "nasd_zpool_scrub_last_end_timestamp_seconds": "When the last scrub ended (Unix time).",
    "nasd_zpool_scrub_last_repaired_bytes": "Bytes the last scrub repaired.",
    "nasd_zpool_scrub_last_errors": "Errors the last scrub could not repair.",
    "nasd_zpool_scrub_next_timestamp_seconds": "When the next scheduled scrub is due (Unix time).",
    "nasd_zpool_alert": "1 for each health condition of the pool that is True, with its reason.",
}


def pool_lines(pools: list[ZPool]) -> list[str]:
    """Gauges of each pool's health, read from its status (nothing for a pool not observed yet)."""
    series: dict[str, list[str]] = {name: [] for name in _POOL_HELP}

    def put(metric: str, labels: dict[str, Any], value: float | int | None) -> None:
        if value is None:
            return
        text = ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items())
        shown = int(value) if isinstance(value, float) and value.is_integer() else value  # (repr: no digit lost)
        series[metric].append(f"{metric}{{{text}}} {shown!r}")

    for pool in pools:
        st, p = pool.status, {"pool": pool.name}
        if st.health is None:
            continue
        for state in POOL_STATES + (() if st.health in POOL_STATES else (st.health,)):
            put("nasd_zpool_state", {**p, "state": state}, int(st.health == state))
        put("nasd_zpool_size_bytes", p, st.size)
        put("nasd_zpool_free_bytes", p, st.free)
        if st.size:
            put("nasd_zpool_capacity_ratio", p, round((st.size - (st.free or 0)) / st.size, 6))
        put("nasd_zpool_capacity_warning_ratio", p, pool.spec.capacity.warningPercent / 100)
        put("nasd_zpool_capacity_critical_ratio", p, pool.spec.capacity.criticalPercent / 100)
        for d in st.devices or []:
            dev = {**p, "device": d.name, "vdev": d.vdev or ""}
            put("nasd_zpool_device_state", {**dev, "state": d.state}, 1)
            for kind, n in (("read", d.read), ("write", d.write), ("checksum", d.checksum)):
                put("nasd_zpool_device_errors", {**dev, "type": kind}, n)
        put("nasd_zpool_data_errors", p, st.dataErrors)
        scan = st.scan
        running = scan is not None and scan.state in ("running", "paused")
        put("nasd_zpool_scrub_in_progress", p, int(running and scan.kind == "scrub"))  # type: ignore[union-attr]
        put("nasd_zpool_resilver_in_progress", p, int(running and scan.kind == "resilver"))  # type: ignore[union-attr]
        if running and scan is not None:
            of_scan = {**p, "kind": scan.kind}
            put("nasd_zpool_scan_progress_ratio", of_scan, None if scan.percentDone is None else scan.percentDone / 100)
            put("nasd_zpool_scan_seconds_left", of_scan, scan.secondsLeft)
        last = st.lastScrub
        if last is not None:
            put("nasd_zpool_scrub_last_end_timestamp_seconds", p, _epoch(last.endTime))
            put("nasd_zpool_scrub_last_repaired_bytes", p, last.repairedBytes)
            put("nasd_zpool_scrub_last_errors", p, last.errors)
        put("nasd_zpool_scrub_next_timestamp_seconds", p, _epoch(st.nextScrub))
        for c in st.conditions:
            if c.type in POOL_ALERTS and c.status == "True":
                put("nasd_zpool_alert", {**p, "condition": c.type, "reason": c.reason or ""}, 1)
    lines: list[str] = []
    for metric, rows in series.items():
        if rows:
            lines += [f"# HELP {metric} {_POOL_HELP[metric]}", f"# TYPE {metric} gauge", *rows]
    return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
