"""The core's side of calling hooks: the async bridge over pluggy, a typed method per hook the core calls.

Plugins call hooks through ``ctx.hooks`` (:mod:`nasd.plugin_hooks`), never through this module.

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
from .feed import DesiredFeed
from .models import NASShare, Resource, ZDataset, ZPool
from .observation import Observed
from .planning import Plan
from .plugin_hooks import await_all, only_answer


class Hooks:
    """Typed, awaitable access to every core hook of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    async def _call(self, hook: str, /, **kwargs: Any) -> list[Any]:
        return await await_all(getattr(self.pm.hook, hook)(**kwargs))

    async def _owned(self, hook: str, what: str, /, **kwargs: Any) -> Any:
        return only_answer(await self._call(hook, **kwargs), what)

    async def startup(self, ctx: Context) -> None:
        await self._call("startup", ctx=ctx)

    async def shutdown(self, ctx: Context) -> None:
        await self._call("shutdown", ctx=ctx)

    async def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        await self._call("supply_desired_state", ctx=ctx, feed=feed)

    async def observe(self, ctx: Context, desired: list[Resource]) -> Observed:
        """Each plugin observes on its own, all at once; what each saw is kept under its name, and the error of one
        that failed is kept for its planning hooks to meet (:meth:`Observed.of`), not hiding what the others saw."""
        async def one(impl: Any) -> tuple[str, Any, BaseException | None]:
            try:
                given = {"ctx": ctx, "desired": desired}  # as pluggy would: only what the impl asks for
                part = impl.function(**{name: given[name] for name in impl.argnames})
                if inspect.isawaitable(part):
                    part = await part
            except Exception as e:
                ctx.log.error("observe failed in plugin %s: %s", impl.plugin_name, e)
                return impl.plugin_name, None, e
            return impl.plugin_name, part, None

        observed = Observed()
        for name, part, error in await asyncio.gather(*(one(impl) for impl in self.pm.hook.observe.get_hookimpls())):
            if error is not None:
                observed.errors[name] = error
            elif part is not None:
                observed.parts[name] = part
        return observed

    async def plan(
        self,
        ctx: Context,
        resource: Resource,
        dependencies: Mapping[tuple[str, str], Resource],
        observed: Observed,
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

    async def plan_absent(self, ctx: Context, resource: Resource, observed: Observed) -> Plan:
        return await self._owned(
            "plan_absent", f"the deletion of {resource.kind} {resource.name}", ctx=ctx, resource=resource,
            observed=observed,
        )

    async def status_changed(self, ctx: Context, resource: Resource) -> None:
        await self._call("status_changed", ctx=ctx, resource=resource)

    async def resource_deleted(self, ctx: Context, resource: Resource) -> None:
        await self._call("resource_deleted", ctx=ctx, resource=resource)
