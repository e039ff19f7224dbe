"""Everything nasd keeps on disk, written so that a ``kill -9`` at any moment leaves either the
old file or the new one: write a temporary file beside it, fsync, rename, fsync the folder.

Layout under the state directory:
  resources.json                 what was last reconciled, per resource: manifest, status, generation
                                 (one file, replaced once per pass that changed anything)
  api/<Kind>/<name>.json         objects applied through the REST API (a desired-state source)
  cache/                         plugin caches (e.g. the detected ZFS dialect)

A file that cannot be read back (cut short or edited by hand) is moved aside as ``<name>.broken-<time>``
for the admin and named in a log line; nasd then starts from what is left, which never deletes anything:
a resource it no longer knows it made is one it does not delete. A write that fails (a full or read-only
folder) keeps the old file whole; the store says so once in the log and writes again on the next pass.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

from .models import KINDS, ManifestError, Resource, parse_resource

log = logging.getLogger("nasd.state")


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
        try:
            view = memoryview(data)
            while view:  # a write may be short (a file system nearly full): never rename a partial file
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # (a full disk: the partial copy must not keep the space)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_json(path: Path, value: Any, sync_dir: bool = True) -> None:
    atomic_write(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), sync_dir=sync_dir)


def move_aside(path: Path, why: str) -> Path | None:
    """Keep a file nasd cannot read back beside it, as ``<name>.broken-<UTC time>``, and say so in the log;
    the copy's path (None when it could not be moved: then the file stays where it is)."""
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{n}")
    try:
        os.replace(path, target)
    except OSError as e:
        log.error("%s is broken (%s) and cannot be moved aside (%s): nasd leaves it there and starts without it; "
                  "fix or remove it by hand", path, why, e.strerror or e, extra={"file": str(path)})
        return None
    log.error("%s is broken (%s): moved to %s for you to look at; nasd starts without it", path, why, target,
              extra={"file": str(path), "movedTo": str(target)})
    return target


def spec_hash(resource: Resource) -> str:
    body = json.dumps(resource.to_manifest(with_status=False).get("spec"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class ObjectDir:
    """A folder of JSON objects, one file per kind/name, with atomic writes; stray temp files are ignored."""

    def __init__(self, root: Path):
        self.root = root
        #: (kind, file stem, why, where the broken copy went) of every file items() could not read
        self.broken: list[tuple[str, str, str, Path | None]] = []

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

    def drop_broken(self, kind: str, name: str) -> None:
        """Remove the copies of ``kind``/``name`` moved aside as broken (it was applied or deleted again)."""
        folder = self.root / kind
        if folder.is_dir():
            for f in folder.glob(f"{glob.escape(name)}.json.broken-*"):
                f.unlink(missing_ok=True)

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
                if ".json.broken-" in f.name:  # moved aside at an earlier start: still unreadable until settled
                    stem = f.name.split(".json.broken-", 1)[0]
                    self.broken.append((kind_dir.name, stem, "it was broken at an earlier start", f))
                    continue
                if f.suffix != ".json":
                    continue
                try:
                    value = json.loads(f.read_text())
                except OSError as e:  # (unreadable now, say EIO: left where it is, and read again next start)
                    self.broken.append((kind_dir.name, f.stem, e.strerror or str(e), None))
                    continue
                except ValueError as e:  # cut short or edited by hand: kept aside for the admin
                    why = f"not valid JSON: {e}"
                    self.broken.append((kind_dir.name, f.stem, why, move_aside(f, why)))
                    continue
                yield kind_dir.name, f.stem, value


class StatusStore:
    """The last reconciled form of each resource, so deletions and generations survive restarts."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "resources.json"
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty = False
        self._hashes: dict[tuple[str, str], tuple[Any, str]] = {}
        self._lines: dict[int, tuple[dict[str, Any], str]] = {}  # id(record) -> (record, its line in the file)
        #: the error of the last flush that failed (logged once until it changes), None when the last one worked
        self.write_error: str | None = None
        self._loaded: dict[tuple[str, str], tuple[dict[str, Any], Resource]] = {}  # (parsed once, at start)
        for stray in state_dir.glob(".resources.json.tmp.*"):  # a kill -9 mid-write: the old file is whole
            try:
                stray.unlink()
            except OSError:
                pass  # (a read-only folder: it is ignored all the same)
        for record in self._read():
            manifest = record["manifest"]
            self._cache[(manifest["kind"], manifest["metadata"]["name"])] = record

    def _read(self) -> list[dict[str, Any]]:
        """The records of resources.json that can be used; a file that cannot be read is moved aside, and a
        record that no longer validates is dropped (a copy of the file is kept): nasd then does not know it
        made that resource, so it never deletes it."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:  # (a folder where the file was, bytes that are not UTF-8)
            move_aside(self.path, getattr(e, "strerror", None) or str(e))
            return []
        try:
            records = json.loads(text)
        except ValueError as e:
            move_aside(self.path, f"not valid JSON: {e}")
            return []
        if not isinstance(records, list):
            move_aside(self.path, f"a JSON {type(records).__name__}, not a list of records")
            return []
        good, bad = [], []
        for record in records:
            parsed = _parse_record(record)
            if isinstance(parsed, str):
                bad.append(parsed)
            else:
                good.append(record)
                self._loaded[parsed.key] = (record, parsed)
        if bad:
            copy = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            try:
                copy.write_bytes(text.encode())
                kept = f"a copy of the file is kept as {copy}"
            except OSError as e:
                kept = f"no copy could be kept ({e.strerror or e})"
            log.error("%s: %d record(s) left out, %s; nasd no longer knows it made these, so it deletes none of "
                      "them (delete by hand what is not wanted): %s", self.path, len(bad), kept, "; ".join(bad)[:800],
                      extra={"file": str(self.path)})
            self._dirty = True  # written back without them on the next pass
        return good

    def known(self) -> dict[tuple[str, str], Resource]:
        """The resources of the records (asked once, at start: the parsed copies from reading the file are handed
        over and not kept, or they would stay beside the newer ones for the daemon's life)."""
        out = {}
        loaded, self._loaded = self._loaded, {}
        for key, record in self._cache.items():
            loaded_one = loaded.get(key)
            if loaded_one is not None and loaded_one[0] is record:
                out[key] = loaded_one[1]
                continue
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

    @property
    def dirty(self) -> bool:
        """Whether something is not written yet (nothing changed since, or the last flush failed)."""
        return self._dirty

    def flush(self) -> bool:
        """Write every record in one atomic replace, if anything changed since the last flush; whether the
        file is up to date. A failed write (a full or read-only folder) leaves the old file whole, is logged
        once (until its error changes, and again when writing works again) and is tried again next time."""
        if not self._dirty:
            return True
        records = [self._cache[k] for k in sorted(self._cache, key=lambda k: (str(k[0]), str(k[1])))]
        # one record per line: readable with `jq`, and several times cheaper than an indented dump
        body = ",\n".join(self._encoded(r) for r in records)
        try:
            atomic_write(self.path, ("[\n" + body + "\n]\n").encode() if records else b"[]\n")
        except OSError as e:
            error = e.strerror or str(e)
            if error != self.write_error:
                log.error("cannot write %s: %s; the last state written is kept whole, and nasd goes on "
                          "reconciling and tries again on every pass: %s", self.path, error, _remedy(e),
                          extra={"file": str(self.path), "errno": e.errno})
            self.write_error = error
            return False
        if self.write_error is not None:
            log.warning("%s written again (the earlier error was: %s)", self.path, self.write_error,
                        extra={"file": str(self.path)})
            self.write_error = None
        self._dirty = False
        return True

    def _encoded(self, record: dict[str, Any]) -> str:
        """A record's line, encoded once while it is the same record (a pass that changes one resource of a
        thousand encodes one)."""
        memo = self._lines.get(id(record))
        if memo is None or memo[0] is not record:
            memo = (record, json.dumps(record, sort_keys=True, separators=(",", ":")))
            self._lines[id(record)] = memo
            if len(self._lines) > 2 * len(self._cache) + 16:  # (records replaced since: dropped)
                live = {id(r) for r in self._cache.values()}
                self._lines = {i: m for i, m in self._lines.items() if i in live}
        return memo[1]

    def get(self, key: tuple[str, str]) -> Resource | None:
        record = self._cache.get(key)
        if record is None:
            return None
        try:
            return parse_resource(record["manifest"], "state")
        except (ManifestError, KeyError):
            return None


def _parse_record(record: Any) -> Resource | str:
    """The resource a record of resources.json holds, or why it cannot be used."""
    if not isinstance(record, dict) or not isinstance(record.get("manifest"), dict):
        return f"not a record: {json.dumps(record)[:80]}"
    manifest = record["manifest"]
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(manifest.get("kind"), str) or not isinstance(name, str):
        return f"a record without kind and name: {json.dumps(manifest)[:80]}"
    if not isinstance(record.get("generation", 1), int):
        return f"{manifest['kind']}/{name}: generation is not a number"
    try:
        return parse_resource(manifest, "state")
    except ManifestError as e:
        return f"{manifest['kind']}/{name} no longer validates ({'; '.join(e.problems)[:200]})"


def _remedy(e: OSError) -> str:
    import errno

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on the file system of the state directory"
    if e.errno == errno.EROFS:
        return "mount the state directory read-write"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "let nasd's user write the state directory"
    return "fix the state directory"
