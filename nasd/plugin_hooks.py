"""The one way a plugin calls hooks: ``ctx.hooks``.

The core's on-demand hooks are typed methods (``await ctx.hooks.take_snapshot(...)``); a hook another plugin
declared (``addhooks``) is called by name with :meth:`PluginHooks.call`, which answers ``[]`` when no
installed plugin declares or implements it, so the caller works without that plugin. ``ctx`` is passed
by the facade; a plugin never touches the plugin manager.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Mapping

from .errors import OwnerError

if TYPE_CHECKING:
    from .models import Resource
    from .models.identity import SecretRef
    from .snapshot_listing import SnapshotListing
    from .workloads import Workload, WorkloadPlan


async def await_all(results: list[Any]) -> list[Any]:
    """Each answer of a hook awaited in order (pluggy calls ``async def`` implementations without awaiting)."""
    out = []
    pending = list(results)
    try:
        while pending:
            item = pending.pop(0)
            out.append(await item if inspect.isawaitable(item) else item)
    finally:
        for item in pending:  # an earlier one raised: do not leak never-awaited coroutines
            if inspect.iscoroutine(item):
                item.close()
    return out


def only_answer(answers: list[Any], what: str) -> Any:
    """The one non-None answer of a hook that needs an owner (``OwnerError`` when none or several)."""
    answers = [a for a in answers if a is not None]
    if not answers:
        raise OwnerError(f"no installed plugin handles {what}", "NoPlugin")
    if len(answers) > 1:
        raise OwnerError(f"{len(answers)} plugins claim {what}", "PluginConflict")
    return answers[0]


class PluginHooks:
    """The hooks a plugin may call, bound to one daemon's plugin manager and context."""

    def __init__(self, pm: Any, ctx: Any):
        self._pm = pm
        self._ctx = ctx

    # -- hooks declared by other plugins ----------------------------------------------------------------

    def declared(self, hook: str) -> bool:
        """Whether an installed plugin declares ``hook`` and another implements it."""
        caller = getattr(self._pm.hook, hook, None) if self._pm is not None else None
        return caller is not None and bool(caller.get_hookimpls())

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call ``hook`` (declared by some plugin) with ``ctx`` and ``kwargs``; its non-None answers, in
        pluggy's order; ``[]`` when no plugin declares or implements it. For synchronous hooks."""
        if not self.declared(hook):
            return []
        return [a for a in getattr(self._pm.hook, hook)(ctx=self._ctx, **kwargs) if a is not None]

    async def acall(self, hook: str, **kwargs: Any) -> list[Any]:
        """:meth:`call` for hooks whose implementations may be ``async def`` (each answer awaited)."""
        if not self.declared(hook):
            return []
        answers = await await_all(getattr(self._pm.hook, hook)(ctx=self._ctx, **kwargs))
        return [a for a in answers if a is not None]

    # -- the core's on-demand hooks (see nasd.hookspecs) --------------------------------------------------

    async def _owned(self, hook: str, what: str, **kwargs: Any) -> Any:
        if self._pm is None:
            raise OwnerError(f"no installed plugin handles {what}", "NoPlugin")
        return only_answer(await await_all(getattr(self._pm.hook, hook)(ctx=self._ctx, **kwargs)), what)

    async def take_snapshot(self, datasets: list[str], name: str, recursive: bool = False,
                            properties: Mapping[str, str] | None = None) -> list[str]:
        return await self._owned("take_snapshot", "snapshots", datasets=datasets, name=name, recursive=recursive,
                                 properties=dict(properties or {}))

    async def list_snapshots(self, roots: list[str], properties: list[str]) -> "SnapshotListing":
        return await self._owned("list_snapshots", "snapshot listings", roots=roots, properties=properties)

    async def destroy_snapshots(self, snapshots: list[str], listing: "SnapshotListing") -> int:
        return await self._owned("destroy_snapshots", "snapshot destruction", snapshots=snapshots, listing=listing)

    async def hold_snapshots(self, snapshots: list[str], tag: str) -> bool:
        return await self._owned("hold_snapshots", "snapshot holds", snapshots=snapshots, tag=tag)

    async def release_snapshots(self, snapshots: list[str], tag: str) -> bool:
        return await self._owned("release_snapshots", "snapshot holds", snapshots=snapshots, tag=tag)

    async def clone(self, snapshot: str, target: str, properties: Mapping[str, str] | None = None) -> str:
        return await self._owned("clone", "clones", snapshot=snapshot, target=target,
                                 properties=dict(properties or {}))

    def read_secret(self, ref: "SecretRef") -> str | None:
        """The value of a Kubernetes Secret reference (None: no plugin knows Secrets; KeyError: no such Secret
        or key)."""
        if self._pm is None:
            return None
        return self._pm.hook.read_secret(ctx=self._ctx, ref=ref)

    def plan_workload(self, owner: "Resource", workload: "Workload | None") -> "WorkloadPlan | None":
        """How the cluster runs ``workload`` for ``owner`` (None: no plugin runs workloads)."""
        if self._pm is None:
            return None
        return self._pm.hook.plan_workload(ctx=self._ctx, owner=owner, workload=workload)
