"""What a plugin's plan hook returns: the steps to converge one resource, computed without side effects.

The core runs the steps (``nasd reconcile``) or prints them (``nasd plan``). A plan
with no steps means the resource is already as the manifest says.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable



@dataclass
class Action:
    """One step: a command run through the core's runner, or a small function for non-command work."""

    description: str
    argv: list[str] | None = None
    #: called with the pass's Context (typed Any here: planning is below the context, which it must not import)
    func: Callable[[Any], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.func is None):
            raise ValueError("an Action has exactly one of argv or func")
        if self.argv is not None:
            for arg in self.argv:
                if not isinstance(arg, str) or "\0" in arg or "\n" in arg:
                    raise ValueError(f"refusing an argument with a NUL or newline: {arg!r}")

    def render(self) -> str:
        if self.argv is not None:
            return shlex.join(self.argv)
        return f"# {self.description}"


@dataclass
class Problem:
    """Why a resource cannot be Ready even after its plan ran: becomes ``Ready=False`` with this reason."""

    reason: str
    message: str


@dataclass(frozen=True)
class ConditionChange:
    """A condition besides Ready that a plan sets once its actions ran: ``ok`` True, False or None (Unknown)."""

    type: str
    ok: bool | None
    reason: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.type == "Ready":
            raise ValueError("Ready is the core's condition: a plan says why it is not Ready with a Problem")


@dataclass
class Plan:
    """The outcome of planning one resource.

    ``actions`` run in order; ``status`` holds status fields known from observation;
    ``problem`` (if any) makes the resource ``Ready=False``; ``events`` are logged
    (e.g. drift that the actions set back); ``done`` marks a deletion plan whose
    resource needs no more handling once its actions ran.
    """

    actions: list[Action] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None
    events: list[str] = field(default_factory=list)
    conditions: list[ConditionChange] = field(default_factory=list)
    #: condition types that no longer apply (removed from the status once the plan ran)
    removed_conditions: list[str] = field(default_factory=list)
