"""Everything nasd keeps on disk, written so that a ``kill -9`` at any moment leaves either the
old file or the new one: write a temporary file beside it, fsync, rename, fsync the folder.

Layout under the state directory:
  resources.json                 what was last reconciled, per resource: manifest, status, generation
                                 (one file, replaced once per pass that changed anything)
  api/<Kind>/<name>.json         objects applied through the REST API (a desired-state source)
  cache/                         plugin caches (e.g. the detected ZFS dialect)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from .models import KINDS, ManifestError, Resource, parse_resource


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, sync_dir: bool = True) -> None:
    """Replace ``path`` whole. With ``sync_dir=False`` the caller fsyncs the folder later (once for
    many files): until then a crash may keep the old file, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def write_json(path: Path, value: Any, sync_dir: bool = True) -> None:
    atomic_write(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), sync_dir=sync_dir)


def spec_hash(resource: Resource) -> str:
    body = json.dumps(resource.to_manifest(with_status=False).get("spec"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class ObjectDir:
    """A folder of JSON objects, one file per kind/name, with atomic writes; stray temp files are ignored."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def put(self, kind: str, name: str, value: Any, sync_dir: bool = True) -> None:
        write_json(self.path(kind, name), value, sync_dir=sync_dir)

    def get(self, kind: str, name: str) -> Any | None:
        try:
            return json.loads(self.path(kind, name).read_text())
        except FileNotFoundError:
            return None

    def delete(self, kind: str, name: str) -> None:
        try:
            self.path(kind, name).unlink()
        except FileNotFoundError:
            pass

    def items(self) -> Iterator[tuple[str, str, Any]]:
        if not self.root.is_dir():
            return
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or kind_dir.name not in KINDS:
                continue
            for f in sorted(kind_dir.iterdir()):
                if f.name.startswith("."):
                    if ".tmp." in f.name:  # left by a kill -9 mid-write: the old file is intact
                        f.unlink(missing_ok=True)
                    continue
                if f.suffix != ".json":
                    continue
                try:
                    yield kind_dir.name, f.stem, json.loads(f.read_text())
                except (OSError, ValueError):
                    continue


class StatusStore:
    """The last reconciled form of each resource, so deletions and generations survive restarts."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "resources.json"
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty = False
        self._hashes: dict[tuple[str, str], tuple[Any, str]] = {}
        for stray in state_dir.glob(".resources.json.tmp.*"):  # a kill -9 mid-write: the old file is whole
            stray.unlink(missing_ok=True)
        try:
            records = json.loads(self.path.read_text())
        except FileNotFoundError:
            records = []
        for record in records:
            manifest = record.get("manifest", {})
            self._cache[(manifest.get("kind"), manifest.get("metadata", {}).get("name"))] = record

    def known(self) -> dict[tuple[str, str], Resource]:
        out = {}
        for key, record in self._cache.items():
            try:
                out[key] = parse_resource(record["manifest"], "state")
            except (ManifestError, KeyError):
                continue
        return out

    def _hash(self, resource: Resource) -> str:
        """spec_hash, remembered while the resource's spec is the same object (the feed keeps
        unchanged resources, and a pass shares their spec)."""
        memo = self._hashes.get(resource.key)
        if memo is not None and memo[0] is resource.spec:
            return memo[1]
        h = spec_hash(resource)
        self._hashes[resource.key] = (resource.spec, h)
        return h

    def generation_for(self, resource: Resource) -> int:
        """The generation: kept from Kubernetes when it gives one, else bumped when the spec changes."""
        if resource.metadata.generation is not None:
            return resource.metadata.generation
        record = self._cache.get(resource.key)
        h = self._hash(resource)
        if record is None:
            return 1
        if record.get("specHash") == h:
            return int(record.get("generation", 1))
        return int(record.get("generation", 1)) + 1

    def save(self, resource: Resource) -> None:
        record = {
            "manifest": resource.to_manifest(),
            "specHash": self._hash(resource),
            "generation": resource.metadata.generation or 1,
        }
        if self._cache.get(resource.key) != record:
            self._cache[resource.key] = record
            self._dirty = True

    def forget(self, key: tuple[str, str]) -> None:
        self._hashes.pop(key, None)
        if self._cache.pop(key, None) is not None:
            self._dirty = True

    def flush(self) -> None:
        """Write every record in one atomic replace, if anything changed since the last flush."""
        if not self._dirty:
            return
        records = [self._cache[k] for k in sorted(self._cache, key=lambda k: (str(k[0]), str(k[1])))]
        # one record per line: readable with `jq`, and several times cheaper than an indented dump
        body = ",\n".join(json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records)
        atomic_write(self.path, ("[\n" + body + "\n]\n").encode() if records else b"[]\n")
        self._dirty = False

    def get(self, key: tuple[str, str]) -> Resource | None:
        record = self._cache.get(key)
        if record is None:
            return None
        try:
            return parse_resource(record["manifest"], "state")
        except (ManifestError, KeyError):
            return None
