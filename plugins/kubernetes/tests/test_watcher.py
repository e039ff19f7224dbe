"""The watcher's loop against a scripted API: bookmarks move the resume point, 410 makes a fresh list that
sees what was deleted meanwhile, a failing watch backs off, and the periodic re-list happens between watches."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from nasd_kubernetes.client import ApiException, Collection
from nasd_kubernetes.watcher import Watcher


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"kind": "NASShare", "metadata": {"name": name, "resourceVersion": rv}}


class ScriptedKube:
    """Lists return ``self.items``; each watch plays the next script (events, then an optional error)."""

    def __init__(self, items: list[dict[str, Any]], rv: str, scripts: list[tuple[list[dict], Any]]):
        self.items, self.rv, self.scripts = items, rv, scripts
        self.watched_from: list[str] = []
        self.lists = 0

    async def list(self, c: Collection) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return list(self.items), self.rv

    async def watch(self, c: Collection, rv: str, timeout: int) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(rv)
        if not self.scripts:
            await asyncio.sleep(3600)
        events, error = self.scripts.pop(0)
        for event in events:
            yield event
        if callable(error):
            error = error(self)
        if error is not None:
            raise error


async def run_until(watcher: Watcher, kube: ScriptedKube, done, timeout: float = 5.0) -> None:
    state = next(iter(watcher.states.values()))
    task = asyncio.get_running_loop().create_task(watcher.run(state))
    try:
        for _ in range(int(timeout / 0.01)):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not done; watched from {kube.watched_from}, lists {kube.lists}")
    finally:
        task.cancel()


async def test_a_bookmark_moves_the_resume_point_without_a_change() -> None:
    kube = ScriptedKube([obj("a", "5")], "10", [([{"type": "BOOKMARK", "object": obj("", "17")}], None)])
    changes: list[str] = []
    watcher = Watcher(kube, [Collection.custom("NASShare")], lambda kind, why: changes.append(why))  # type: ignore[arg-type]
    await run_until(watcher, kube, lambda: len(kube.watched_from) == 2)
    assert kube.watched_from == ["10", "17"]
    assert changes == ["nasshares listed"]  # the bookmark changed nothing


async def test_410_lists_again_and_a_deletion_in_the_gap_is_seen() -> None:
    def expire(k: ScriptedKube) -> Exception:
        k.items, k.rv = [obj("a", "11")], "20"  # "b" is deleted while the history is gone
        return ApiException(status=410, reason="Expired")

    kube = ScriptedKube([obj("a", "5"), obj("b", "6")], "10", [
        ([{"type": "MODIFIED", "object": obj("a", "11")}], expire)])
    watcher = Watcher(kube, [Collection.custom("NASShare")], lambda kind, why: None)  # type: ignore[arg-type]
    state = watcher.states["NASShare"]
    await run_until(watcher, kube, lambda: kube.lists == 2 and len(kube.watched_from) == 2)
    assert set(state.objects) == {"a"} and kube.watched_from == ["10", "20"]
    assert watcher.counts["expired"] == 1


async def test_a_dropped_watch_resumes_from_the_last_event_after_a_pause() -> None:
    kube = ScriptedKube([], "10", [([{"type": "ADDED", "object": obj("a", "12")}], ConnectionResetError("drop")),
                                   ([], None)])
    watcher = Watcher(kube, [Collection.custom("NASShare")], lambda kind, why: None)  # type: ignore[arg-type]
    await run_until(watcher, kube, lambda: len(kube.watched_from) == 2)
    assert kube.watched_from == ["10", "12"] and kube.lists == 1 and watcher.counts["errors"] == 1


async def test_the_periodic_relist_happens_between_watches() -> None:
    kube = ScriptedKube([obj("a", "5")], "10", [([], None)] * 3)
    watcher = Watcher(kube, [Collection.custom("NASShare")], lambda kind, why: None,  # type: ignore[arg-type]
                      relist_seconds=0.0)
    await run_until(watcher, kube, lambda: len(kube.watched_from) >= 3)
    assert kube.lists >= 3  # one list before each watch: never one beside a running watch
