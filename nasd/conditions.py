"""Setting Conditions the Kubernetes way: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from .models import Condition, Status


def set_condition(
    status: Status, type_: str, ok: bool | None, reason: str, message: str = "", generation: int | None = None
) -> bool:
    """Set condition ``type_``; return whether anything about it changed."""
    value = "Unknown" if ok is None else ("True" if ok else "False")
    message = message.strip()
    if len(message) > 1024:
        message = message[:1021] + "..."
    for i, c in enumerate(status.conditions):
        if c.type == type_:
            if (c.status, c.reason, c.message, c.observedGeneration) == (value, reason, message, generation):
                return False
            status.conditions[i] = Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                observedGeneration=generation,
                lastTransitionTime=c.lastTransitionTime if c.status == value else Condition.model_fields[
                    "lastTransitionTime"
                ].default_factory(),  # type: ignore[misc]
            )
            return True
    status.conditions.append(
        Condition(type=type_, status=value, reason=reason, message=message, observedGeneration=generation)
    )
    return True


def remove_condition(status: Status, type_: str) -> bool:
    before = len(status.conditions)
    status.conditions = [c for c in status.conditions if c.type != type_]
    return len(status.conditions) != before
