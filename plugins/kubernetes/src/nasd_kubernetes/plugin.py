"""The Kubernetes plugin's hook implementations.

It is a source of desired state like the manifest folder: the custom objects of this node come in
through ``supply_desired_state``; status goes back through ``status_changed``, finalizers through
``resource_deleted``; Secrets answer ``read_secret``. It is active only when ``plugins.kubernetes``
is in the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nasd.context import Context
from nasd.feed import DesiredFeed
from nasd.hookspecs import hookimpl
from nasd.models import Resource
from nasd.models.identity import SecretRef
from nasd.workloads import Workload, WorkloadPlan

from .settings import load_settings

if TYPE_CHECKING:  # kubernetes-asyncio is imported only where the plugin is configured
    from .source import KubeSource

NAME = "kubernetes"


def _source(ctx: Context) -> "KubeSource | None":
    return ctx.cache.get(NAME)


@hookimpl
async def supply_desired_state(ctx: Context, feed: DesiredFeed) -> None:
    if NAME not in ctx.config.plugins:
        return None
    from .client import Kube, connect
    from .source import KubeSource

    settings = load_settings(ctx.settings(NAME))
    kube = Kube(await connect(settings))
    source = ctx.cache[NAME] = KubeSource(ctx, feed, kube, settings)
    await source.watcher.list_all()
    source.refresh()
    if ctx.watch:
        for state in source.watcher.states.values():
            ctx.spawn(source.watcher.run(state), f"kubernetes-watch-{state.collection.plural}")
        ctx.spawn(source.run_refresher(), "kubernetes-refresh")
        ctx.spawn(source.run_writer(), "kubernetes-write")
    return None


@hookimpl
def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    source = _source(ctx)
    if source is not None:
        source.sync_statuses(desired)  # queues writes only: the writer task makes them
    return None


@hookimpl
def read_secret(ctx: Context, ref: SecretRef) -> str | None:
    source = _source(ctx)
    return None if source is None else source.read_secret(ref)


@hookimpl
def plan_workload(ctx: Context, owner: Resource, workload: Workload | None) -> WorkloadPlan | None:
    source = _source(ctx)
    return None if source is None else source.plan_workload(owner, workload)


@hookimpl
def status_changed(ctx: Context, resource: Resource) -> None:
    source = _source(ctx)
    if source is not None and source.feed.source_of(resource.key) in ([], [NAME]):  # (the feed source is named after the plugin)
        source.status_changed(resource)


@hookimpl
def resource_deleted(ctx: Context, resource: Resource) -> None:
    source = _source(ctx)
    if source is not None:
        source.deleted(resource)


@hookimpl
async def shutdown(ctx: Context) -> None:
    source = ctx.cache.pop(NAME, None)
    if source is None:
        return
    try:
        await source.write_pending()  # a one-shot `nasd reconcile` writes its status here
    except Exception as e:
        ctx.log.warning("kubernetes: final writes failed: %s", e)
    await source.kube.close()
