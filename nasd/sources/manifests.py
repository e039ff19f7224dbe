"""The manifest-folder source: the files under ``--manifests`` are desired state.

In ``nasd serve`` the folder is polled (mtime in ns, size and inode, so an editor's atomic
replace is seen); a changed file is re-read once it has not changed for a moment (a file
being written in place is not read half-way). A file that fails to parse keeps its last good
resources and the error is logged, because a resource vanishing means a deletion; a folder
that is missing (not mounted yet) keeps everything. While the source reports errors, the
reconciler holds every deletion.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from ..context import Context
from ..feed import DesiredFeed
from ..hookspecs import hookimpl
from ..manifests import manifest_files, parse_documents, read_manifest
from ..models import ManifestError, Resource

log = logging.getLogger("nasd.sources.manifests")
SOURCE = "manifests"
_FOLDER = Path("<manifest folders>")  # where errors about the folders themselves are kept


class ManifestFolder:
    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._stamps: dict[Path, tuple[int, int, int]] = {}
        self._good: dict[Path, list[Resource]] = {}
        self._errors: dict[Path, list[str]] = {}

    def scan(self, settle: float = 0.0) -> bool:
        """Re-read changed files (those changed less than ``settle`` seconds ago: at the next
        scan); return whether anything changed."""
        try:
            files = manifest_files(self.paths)
        except ManifestError as e:
            log.error("%s (keeping what was read before)", e)
            new = e.problems or [str(e)]
            changed = self._errors.get(_FOLDER) != new
            self._errors[_FOLDER] = new
            return changed
        changed = self._errors.pop(_FOLDER, None) is not None
        for f in list(self._stamps):
            if f not in files:  # a removed file: its resources are no longer desired
                del self._stamps[f]
                self._good.pop(f, None)
                self._errors.pop(f, None)
                changed = True
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if self._stamps.get(f) == stamp:
                continue
            if settle and 0 <= time.time() - st.st_mtime < settle:
                continue  # still being written, perhaps: read it at the next scan
            self._stamps[f] = stamp
            changed = True
            try:
                self._good[f] = parse_documents(read_manifest(f), str(f))
                self._errors.pop(f, None)
            except (ManifestError, OSError, ValueError) as e:  # ValueError: not UTF-8
                problems = e.problems if isinstance(e, ManifestError) else [f"{f}: cannot be read: {e}"]
                self._errors[f] = problems
                for p in problems:
                    log.error("manifest rejected, keeping its last good version: %s", p)
        return changed

    def _merged(self) -> tuple[list[Resource], list[str]]:
        """Every file's resources (the first file, by name, wins a kind/name) and the duplicates left out."""
        merged: dict[tuple[str, str], Resource] = {}
        duplicates = []
        for f in sorted(self._good):
            for r in self._good[f]:
                if r.key in merged:
                    duplicates.append(f"{f}: {r.kind}/{r.name} is also declared in another file")
                    continue
                merged[r.key] = r
        return list(merged.values()), duplicates

    def resources(self) -> list[Resource]:
        return self._merged()[0]

    def errors(self) -> list[str]:
        return [p for problems in self._errors.values() for p in problems] + self._merged()[1]

    def publish(self, feed: DesiredFeed) -> None:
        resources, duplicates = self._merged()
        feed.replace(SOURCE, resources, [p for problems in self._errors.values() for p in problems] + duplicates)

    async def watch(self, feed: DesiredFeed, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self.scan(settle=min(0.3, interval)):
                    self.publish(feed)
            except Exception:  # never stop watching: a later edit must still be seen
                log.exception("scanning the manifest folder failed")


class ManifestsPlugin:
    """The built-in source of the manifest folders named in the configuration (``folder`` once started)."""

    def __init__(self) -> None:
        self.folder: ManifestFolder | None = None

    @hookimpl
    def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        if not ctx.config.manifests:
            return None
        self.folder = ManifestFolder(list(ctx.config.manifests))
        self.folder.scan()
        self.folder.publish(feed)
        if ctx.watch:
            ctx.spawn(self.folder.watch(feed, ctx.config.manifestPollSeconds), name="manifest-folder")
        return None
