"""Putting the parts together: one object that owns a plugin manager, the feed, the status
store and the reconciler, for ``nasd serve``, the one-shot commands and the tests."""

from __future__ import annotations

from typing import Iterable, Mapping

import pluggy

from .calling import Hooks
from .config import Config
from .context import Context
from .feed import DesiredFeed
from .metrics import Metrics
from .plugins import make_plugin_manager
from .reconciler import Reconciler
from .runner import Runner
from .state import StatusStore


class Nasd:
    def __init__(
        self,
        config: Config,
        *,
        watch: bool = False,
        pm: pluggy.PluginManager | None = None,
        runner: Runner | None = None,
        extra_plugins: Iterable[tuple[str, object]] = (),
        replace_plugins: Mapping[str, object] | None = None,
        read_only: bool = False,
    ):
        self.config = config
        self.runner = runner or Runner(programs=config.programs)
        self.runner.read_only = read_only
        self.pm = pm or make_plugin_manager(extra=extra_plugins, replace=replace_plugins)
        self.hooks = Hooks(self.pm)
        self.ctx = Context(config=config, runner=self.runner, watch=watch, _pm=self.pm)
        self.feed = DesiredFeed(on_change=lambda why, settle: self.reconciler.wake(why, settle, full=False))
        # others may pass through (smbd's children, acting as share users, reach Samba's lock folder below it),
        # not list it; every file nasd writes in it is 0600
        config.stateDir.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.store = StatusStore(config.stateDir)
        self.metrics = Metrics(self.runner)
        self.reconciler = Reconciler(self.ctx, self.hooks, self.feed, self.store, self.metrics)
        self.ctx._wake = self.reconciler.wake
        self.ctx._pending = self.reconciler.wake_pending
        self.ctx._reconciled = self.reconciler.holds
        self._started = False

    async def start(self) -> None:
        """Run ``startup`` on every plugin, then let the sources fill the feed."""
        self._started = True  # from here on, shutdown runs even if a plugin's startup fails
        await self.hooks.startup(self.ctx)
        await self.hooks.supply_desired_state(self.ctx, self.feed)

    async def stop(self) -> None:
        await self.ctx.close()
        if self._started:
            await self.hooks.shutdown(self.ctx)
            self._started = False

    async def __aenter__(self) -> "Nasd":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
