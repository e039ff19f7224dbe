"""The REST API's source: objects applied through the API are desired state, kept under
``<state dir>/api`` so they survive a restart (written atomically)."""

from __future__ import annotations

import hashlib
import logging

from ..context import Context
from ..feed import DesiredFeed
from ..hookspecs import hookimpl
from ..models import ManifestError, Resource, parse_resource
from ..state import ObjectDir, move_aside

log = logging.getLogger("nasd.sources.api")
SOURCE = "api"
#: names longer than this are stored under a shortened file name: a file name has at most 255 bytes,
#: and the temporary file of an atomic write adds about 20 to it (Kubernetes allows 253 characters)
_STEM_MAX = 200


def file_stem(name: str) -> str:
    """The file name (without ``.json``) an object named ``name`` is kept under: the name itself, or
    for a long one its start and a hash of it (``~`` is never part of a name, so none can collide)."""
    if len(name.encode()) <= _STEM_MAX:
        return name
    head = name.encode()[:150].decode(errors="ignore")
    return f"{head}~{hashlib.sha256(name.encode()).hexdigest()[:32]}"


class APIStore:
    def __init__(self, ctx: Context, feed: DesiredFeed):
        self.dir = ObjectDir(ctx.state_dir / "api")
        self.feed = feed
        #: (kind, file stem) -> why: stored objects that could not be read back (moved aside); while any is
        #: left, deletions are held (what is missing may only be unreadable), until that object is applied
        #: again through the API
        self.unreadable: dict[tuple[str, str], str] = {}

    def load(self) -> list[Resource]:
        out = []
        for kind, name, data in self.dir.items():
            try:
                out.append(parse_resource(data, f"state api/{kind}/{name}"))
            except ManifestError as e:
                moved = move_aside(self.dir.path(kind, name), f"no longer a valid {kind}: {'; '.join(e.problems)}")
                self._unreadable(kind, name, f"no longer a valid {kind}", moved)
        for kind, stem, why, moved in self.dir.broken:
            self._unreadable(kind, stem, why, moved)
        return out

    def _unreadable(self, kind: str, stem: str, why: str, moved: object) -> None:
        where = f"moved to {moved}" if moved else "left where it is"
        self.unreadable[(kind, stem)] = (
            f"the {kind} {stem} applied through the API cannot be read back ({why[:200]}; {where}); "
            f"deletions are held until you apply {kind} {stem} again through the API (then delete it there if it "
            "should go)")

    def errors(self) -> list[str]:
        return list(self.unreadable.values())

    def _settled(self, kind: str, name: str) -> None:
        self.dir.drop_broken(kind, file_stem(name))
        if self.unreadable.pop((kind, file_stem(name)), None) is not None:
            self.feed.set_errors(SOURCE, self.errors())

    def put(self, resource: Resource) -> None:
        self.dir.put(resource.kind, file_stem(resource.name), resource.to_manifest(with_status=False))
        self.feed.put(SOURCE, resource)
        self._settled(resource.kind, resource.name)

    def delete(self, kind: str, name: str) -> bool:
        self.dir.delete(kind, file_stem(name))
        if file_stem(name) != name and len(name.encode()) <= 240:  # kept under its full name by an older nasd
            try:
                self.dir.delete(kind, name)
            except OSError:
                pass
        removed = self.feed.remove(SOURCE, (kind, name))
        self._settled(kind, name)
        return removed


class APIStorePlugin:
    """The built-in source of what the REST API applied; ``store`` is there once the daemon started."""

    def __init__(self) -> None:
        self.store: APIStore | None = None

    @hookimpl
    def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        self.store = APIStore(ctx, feed)
        feed.replace(SOURCE, self.store.load(), self.store.errors())
