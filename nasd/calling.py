"""The async bridge over pluggy, and a typed method per hook so callers never touch ``pm.hook``.

pluggy calls implementations synchronously; an ``async def`` implementation returns a
coroutine, which we await here. Hooks that need an owner are broadcast: every
implementation answers, ``None`` means "not mine", and exactly one answer is required.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Mapping

import pluggy

from .context import Context
from .errors import OwnerError
from .feed import DesiredFeed
from .models import NASShare, Resource, ZDataset, ZPool
from .planning import Plan
from .snapshot_listing import SnapshotListing


async def _await_all(results: list[Any]) -> list[Any]:
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


class Hooks:
    """Typed, awaitable access to every core hook of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    async def _call(self, hook: str, /, **kwargs: Any) -> list[Any]:
        return await _await_all(getattr(self.pm.hook, hook)(**kwargs))

    async def _owned(self, hook: str, what: str, /, **kwargs: Any) -> Any:
        answers = [a for a in await self._call(hook, **kwargs) if a is not None]
        if not answers:
            raise OwnerError(f"no installed plugin handles {what}", "NoPlugin")
        if len(answers) > 1:
            raise OwnerError(f"{len(answers)} plugins claim {what}", "PluginConflict")
        return answers[0]

    async def startup(self, ctx: Context) -> None:
        await self._call("startup", ctx=ctx)

    async def shutdown(self, ctx: Context) -> None:
        await self._call("shutdown", ctx=ctx)

    async def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        await self._call("supply_desired_state", ctx=ctx, feed=feed)

    async def observe(self, ctx: Context, desired: list[Resource]) -> dict[str, Any]:
        """Each plugin observes on its own, all at once: one failing (its key then is missing and its error is kept
        under ``<plugin>_error``) does not hide what the others saw."""
        async def one(impl: Any) -> dict[str, Any]:
            try:
                given = {"ctx": ctx, "desired": desired}  # as pluggy would: only what the impl asks for
                part = impl.function(**{name: given[name] for name in impl.argnames})
                if inspect.isawaitable(part):
                    part = await part
            except Exception as e:
                ctx.log.error("observe failed in plugin %s: %s", impl.plugin_name, e)
                return {f"{impl.plugin_name}_error": f"{type(e).__name__}: {e}"}
            return dict(part or {})

        # plugins observe concurrently (their reads are independent); merged in registration order
        merged: dict[str, Any] = {}
        for part in await asyncio.gather(*(one(impl) for impl in self.pm.hook.observe.get_hookimpls())):
            merged.update(part)
        return merged

    async def plan(
        self,
        ctx: Context,
        resource: Resource,
        dependencies: Mapping[tuple[str, str], Resource],
        observed: Mapping[str, Any],
    ) -> Plan:
        what = f"{resource.kind} {resource.name}"
        if isinstance(resource, ZPool):
            return await self._owned("plan_pool", what, ctx=ctx, pool=resource, observed=observed)
        if isinstance(resource, ZDataset):
            pool = dependencies.get(("ZPool", resource.spec.pool))
            return await self._owned(
                "plan_dataset", what, ctx=ctx, dataset=resource, pool=pool, observed=observed
            )
        if isinstance(resource, NASShare):
            dataset = dependencies[("ZDataset", resource.spec.dataset)]
            return await self._owned(
                "plan_share",
                f"{resource.spec.protocol} share {resource.name}",
                ctx=ctx,
                share=resource,
                dataset=dataset,
                observed=observed,
            )
        return await self._owned(
            "plan_resource", what, ctx=ctx, resource=resource, dependencies=dependencies, observed=observed
        )

    async def plan_absent(self, ctx: Context, resource: Resource, observed: Mapping[str, Any]) -> Plan:
        return await self._owned(
            "plan_absent", f"the deletion of {resource.kind} {resource.name}", ctx=ctx, resource=resource,
            observed=observed,
        )

    async def take_snapshot(
        self, ctx: Context, datasets: list[str], name: str, recursive: bool = False,
        properties: Mapping[str, str] | None = None,
    ) -> list[str]:
        return await self._owned(
            "take_snapshot", "snapshots", ctx=ctx, datasets=datasets, name=name, recursive=recursive,
            properties=dict(properties or {}),
        )

    async def list_snapshots(self, ctx: Context, roots: list[str], properties: list[str]) -> SnapshotListing:
        return await self._owned("list_snapshots", "snapshot listings", ctx=ctx, roots=roots, properties=properties)

    async def destroy_snapshots(self, ctx: Context, snapshots: list[str], listing: SnapshotListing) -> int:
        return await self._owned(
            "destroy_snapshots", "snapshot destruction", ctx=ctx, snapshots=snapshots, listing=listing
        )

    async def hold_snapshots(self, ctx: Context, snapshots: list[str], tag: str) -> bool:
        return await self._owned("hold_snapshots", "snapshot holds", ctx=ctx, snapshots=snapshots, tag=tag)

    async def release_snapshots(self, ctx: Context, snapshots: list[str], tag: str) -> bool:
        return await self._owned("release_snapshots", "snapshot holds", ctx=ctx, snapshots=snapshots, tag=tag)

    async def clone(self, ctx: Context, snapshot: str, target: str, properties: Mapping[str, str] | None = None) -> str:
        return await self._owned(
            "clone", "clones", ctx=ctx, snapshot=snapshot, target=target, properties=dict(properties or {})
        )

    async def status_changed(self, ctx: Context, resource: Resource) -> None:
        await self._call("status_changed", ctx=ctx, resource=resource)

    async def resource_deleted(self, ctx: Context, resource: Resource) -> None:
        await self._call("resource_deleted", ctx=ctx, resource=resource)
