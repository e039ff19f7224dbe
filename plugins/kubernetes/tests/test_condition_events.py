"""Events for the conditions besides Ready (a pool's health): one per change of status or reason, none for a
condition that stays as it is or first appears healthy."""

from __future__ import annotations

from typing import Any

from nasd_kubernetes.reporting import condition_transitions


def status(*conditions: tuple[str, str, str, str]) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}] +
            [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions]}


def test_a_condition_turning_bad_is_a_warning_and_healing_is_normal() -> None:
    healthy = status(("Degraded", "False", "Healthy", "pool tank is ONLINE"))
    degraded = status(("Degraded", "True", "PoolDegraded", "pool tank is DEGRADED: /dev/b is OFFLINE"))
    assert condition_transitions(healthy, degraded) == [
        ("Warning", "PoolDegraded", "Degraded: pool tank is DEGRADED: /dev/b is OFFLINE")]
    assert condition_transitions(degraded, healthy) == [("Normal", "Healthy", "Degraded: pool tank is ONLINE")]


def test_no_event_for_a_condition_that_stays_or_first_appears_healthy_or_whose_message_alone_changes() -> None:
    first = status(("DeviceErrors", "False", "NoErrors", ""), ("CapacityHigh", "False", "CapacityOK", "12% full"))
    assert condition_transitions(None, first) == []
    assert condition_transitions(first, first) == []
    at_81 = status(("CapacityHigh", "True", "CapacityWarning", "81% full"))
    at_83 = status(("CapacityHigh", "True", "CapacityWarning", "83% full"))
    assert condition_transitions(at_81, at_83) == []
    assert condition_transitions(None, at_81) == [("Warning", "CapacityWarning", "CapacityHigh: 81% full")]


def test_a_reason_change_while_bad_is_a_new_warning_and_a_bad_condition_removed_is_normal() -> None:
    warning = status(("CapacityHigh", "True", "CapacityWarning", "85% full"))
    critical = status(("CapacityHigh", "True", "CapacityCritical", "96% full"))
    assert [e[:2] for e in condition_transitions(warning, critical)] == [("Warning", "CapacityCritical")]
    full = status(("Full", "True", "PoolFull", "no space left"))
    assert condition_transitions(full, status()) == [("Normal", "FullCleared", "Full: no longer applies")]


def test_a_condition_that_is_true_when_well_is_read_the_other_way_round() -> None:
    seen = status(("Advertised", "True", "Seen", ""))
    gone = status(("Advertised", "False", "NotSeen", "not on the network"))
    assert condition_transitions(None, seen) == []
    assert condition_transitions(seen, gone) == [("Warning", "NotSeen", "Advertised: not on the network")]
