"""The desired state, as the sources (manifest folder, API, Kubernetes watcher) supply it.

Each source replaces or edits its own slice; the reconciler reads the merged view.
Two sources declaring the same kind/name is a conflict, reported on that resource.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .models import Resource

Key = tuple[str, str]


class DesiredFeed:
    def __init__(self, on_change: Callable[[str, bool], None] = lambda why, settle: None):
        """``on_change(why, settle)``: settle is true when more changes may follow at once (a source
        replaced whole), false for a single object put or removed."""
        self._sources: dict[str, dict[Key, Resource]] = {}
        self._errors: dict[str, list[str]] = {}
        self._released: set[Key] = set()
        self._on_change = on_change
        self._merged: tuple[dict[Key, Resource], dict[Key, list[str]]] | None = None  # snapshot(), until a change

    def replace(self, source: str, resources: Iterable[Resource], errors: Iterable[str] = ()) -> bool:
        """Set everything ``source`` declares; return whether anything changed."""
        new = {r.key: r for r in resources}
        old = self._sources.get(source)
        errors = list(errors)
        errors_changed = self._errors.get(source, []) != errors
        self._errors[source] = errors
        if old is not None:  # an unchanged resource stays the very object it was (the reconciler plans only changes)
            new = {k: old[k] if k in old and _same_one(old[k], r) else r for k, r in new.items()}
        if old is not None and old.keys() == new.keys() and all(old[k] is r for k, r in new.items()):
            if errors_changed:  # e.g. a broken file fixed back to its last good text: held deletions may go on
                self._on_change(f"{source}: errors changed", True)
            return False
        self._sources[source] = new
        self._merged = None
        self._on_change(f"{source} changed", True)
        return True

    def set_errors(self, source: str, errors: Iterable[str]) -> None:
        """Set what ``source`` reports as unreadable (deletions are held while any source reports errors)."""
        errors = list(errors)
        if self._errors.get(source, []) != errors:
            self._errors[source] = errors
            self._on_change(f"{source}: errors changed", True)

    def put(self, source: str, resource: Resource) -> None:
        self._sources.setdefault(source, {})[resource.key] = resource
        self._merged = None
        self._on_change(f"{source}: {resource.kind}/{resource.name} applied", False)

    def remove(self, source: str, key: Key) -> bool:
        removed = self._sources.get(source, {}).pop(key, None) is not None
        if removed:
            self._merged = None
            self._on_change(f"{source}: {key[0]}/{key[1]} deleted", False)
        return removed

    def release(self, source: str, key: Key) -> None:
        """Stop declaring ``key`` without asking for its deletion: another node manages it now (the
        Kubernetes watcher, when a pool's ``spec.node`` moves). The core forgets it and runs nothing."""
        self._sources.get(source, {}).pop(key, None)
        self._merged = None
        if key not in self._released:
            self._released.add(key)
            self._on_change(f"{source}: {key[0]}/{key[1]} released", False)

    def released(self) -> set[Key]:
        """Keys released and not declared again since (the reconciler forgets them instead of deleting)."""
        if not self._released:
            return set()
        declared = {k for items in self._sources.values() for k in items}
        self._released -= declared
        return set(self._released)

    def forget_released(self, keys: set[Key]) -> None:
        """The reconciler has forgotten ``keys`` (or never knew them)."""
        self._released -= keys

    def source_of(self, key: Key) -> list[str]:
        return [name for name, items in self._sources.items() if key in items]

    def errors(self) -> dict[str, list[str]]:
        return {k: v for k, v in self._errors.items() if v}

    def snapshot(self) -> tuple[dict[Key, Resource], dict[Key, list[str]]]:
        """The merged desired state, and the keys declared by more than one source."""
        if self._merged is not None:
            return dict(self._merged[0]), {k: list(v) for k, v in self._merged[1].items()}
        merged: dict[Key, Resource] = {}
        owners: dict[Key, list[str]] = {}
        for source, items in sorted(self._sources.items()):
            for key, resource in items.items():
                owners.setdefault(key, []).append(source)
                merged.setdefault(key, resource)
        conflicts = {k: v for k, v in owners.items() if len(v) > 1}
        self._merged = (merged, conflicts)
        return dict(merged), {k: list(v) for k, v in conflicts.items()}


def _same_one(a: Resource, b: Resource) -> bool:
    return a.to_manifest(with_status=False) == b.to_manifest(with_status=False)
