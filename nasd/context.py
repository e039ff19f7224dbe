"""What every hook receives: configuration, the command runner, the state directory, a logger, a way to
ask for another reconcile pass, and ``hooks``, through which a plugin calls hooks. A plugin keeps its own
state in its plugin object, never here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine

from .config import Config
from .plugin_hooks import PluginHooks
from .runner import Runner


@dataclass
class Context:
    config: Config
    runner: Runner
    #: True in ``nasd serve`` (sources keep watching); False in one-shot commands
    watch: bool = False
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("nasd"))
    _wake: Callable[[str], None] = field(default=lambda why: None)
    _pending: Callable[[], bool] = field(default=lambda: False)
    _reconciled: Callable[[tuple[str, str]], bool] = field(default=lambda key: False)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    #: the plugin manager (the core's own: plugins call hooks through ``hooks``)
    _pm: Any = None
    _hooks: PluginHooks | None = None

    @property
    def hooks(self) -> PluginHooks:
        """The one way a plugin calls hooks: the core's on-demand hooks, and hooks other plugins declare."""
        if self._hooks is None:
            self._hooks = PluginHooks(self._pm, self)
        return self._hooks

    @property
    def state_dir(self) -> Path:
        return self.config.stateDir

    def settings(self, plugin: str) -> dict[str, Any]:
        return self.config.plugin_settings(plugin)

    def request_reconcile(self, why: str) -> None:
        """Ask the daemon for a reconcile pass soon (bursts collapse into one)."""
        self._wake(why)

    def changes_pending(self) -> bool:
        """Whether another pass has been asked for since this one started (more changes are coming):
        a plugin may leave a costly reload to that pass, so a burst of edits reloads once."""
        return self._pending()

    def reconciled(self, key: tuple[str, str]) -> bool:
        """Whether the core holds ``(kind, name)`` as reconciled, or the pass running now is planning it:
        when it leaves the desired state, the core plans its deletion (and calls ``resource_deleted``
        once that is done). False for a resource never reconciled here, whose removal needs nothing
        on this node."""
        return self._reconciled(key)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Start a background task that lives as long as the daemon (cancelled at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
