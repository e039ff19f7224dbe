"""The Kubernetes plugin's hook implementations.

It is a source of desired state like the manifest folder: the custom objects of this node come in
through ``supply_desired_state``; status goes back through ``status_changed``, finalizers through
``resource_deleted``; Secrets answer ``read_secret``. It is active only when ``plugins.kubernetes``
is in the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nasd.plugin import Context, DesiredFeed, Resource, SecretRef, Workload, WorkloadPlan, hookimpl

from .settings import NAME, KubernetesSettings, load_settings

if TYPE_CHECKING:  # kubernetes-asyncio is imported only where the plugin is configured
    from .source import KubeSource


class KubernetesPlugin:
    """One per plugin manager: its settings (loaded when the watcher starts) and the cluster's source."""

    def __init__(self) -> None:
        self.settings: KubernetesSettings | None = None
        #: the watcher's link to the core; None where the plugin is not configured (or after shutdown)
        self.source: KubeSource | None = None

    @hookimpl
    async def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        if NAME not in ctx.config.plugins:
            return None
        from .client import Kube, connect
        from .source import KubeSource

        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME))
        kube = Kube(await connect(self.settings))
        source = self.source = KubeSource(ctx, feed, kube, self.settings)
        await source.watcher.list_all()
        source.refresh()
        if ctx.watch:
            for state in source.watcher.states.values():
                ctx.spawn(source.watcher.run(state), f"kubernetes-watch-{state.collection.plural}")
            ctx.spawn(source.run_refresher(), "kubernetes-refresh")
            ctx.spawn(source.run_writer(), "kubernetes-write")
        return None

    @hookimpl
    def observe(self, ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
        if self.source is not None:
            self.source.sync_statuses(desired)  # queues writes only: the writer task makes them
        return None

    @hookimpl
    def read_secret(self, ctx: Context, ref: SecretRef) -> str | None:
        return None if self.source is None else self.source.read_secret(ref)

    @hookimpl
    def plan_workload(self, ctx: Context, owner: Resource, workload: Workload | None) -> WorkloadPlan | None:
        return None if self.source is None else self.source.plan_workload(owner, workload)

    @hookimpl
    def status_changed(self, ctx: Context, resource: Resource) -> None:
        source = self.source
        if source is not None and source.feed.source_of(resource.key) in ([], [NAME]):  # (the feed source is named after the plugin)
            source.status_changed(resource)

    @hookimpl
    def resource_deleted(self, ctx: Context, resource: Resource) -> None:
        if self.source is not None:
            self.source.deleted(resource)

    @hookimpl
    async def shutdown(self, ctx: Context) -> None:
        source, self.source = self.source, None
        if source is None:
            return
        try:
            await source.write_pending()  # a one-shot `nasd reconcile` writes its status here
        except Exception as e:
            ctx.log.warning("kubernetes: final writes failed: %s", e)
        await source.kube.close()
