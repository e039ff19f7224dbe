"""Prometheus text-format metrics: resources by condition, reconcile durations, commands run."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from .models import Resource
from .runner import Runner

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, runner: Runner):
        self.runner = runner
        self.pass_count = 0
        self.pass_sum = 0.0
        self.pass_buckets = Counter()
        self.resources: Counter = Counter()

    def observe_pass(self, seconds: float) -> None:
        self.pass_count += 1
        self.pass_sum += seconds
        for b in BUCKETS:
            if seconds <= b:
                self.pass_buckets[b] += 1

    def set_resources(self, resources: Iterable[Resource]) -> None:
        counts: Counter = Counter()
        for r in resources:
            ready = r.condition("Ready")
            counts[(r.kind, ready.status if ready else "Unknown", ready.reason if ready else "")] += 1
        self.resources = counts

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
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
