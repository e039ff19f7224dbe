"""A file shared by many resources: one entry per resource, one check and one reload for all of them.

smb.conf holds a section per SMB share, nasd's exports file a line per NFS share: a change to any one resource
changes the one file, which a program must accept before it is put in effect, and a daemon must then be told to
read it. This module does that for every plugin that keeps such a file; the plugin only says, in a
:class:`FileFormat`, how its entries are read from and rendered into the file, who checks it and how it is
reloaded.

One :class:`SharedFile` per pass, made while observing (:meth:`SharedFile.read`): it holds what the file in effect
has (``applied``) and what the pass plans (``entries``, which start as ``applied``: an entry stays until its
resource's deletion removes it). Each resource's planning hook contributes its entry (:meth:`SharedFile.set`) or
its removal (:meth:`SharedFile.remove`); both say whether the file must change for that resource, and if so its
plan gets :meth:`SharedFile.action`. The first of those actions that runs renders every entry planned so far,
stages the file beside the live one, has the plugin check the staged file, swaps it in atomically and reloads;
the actions after it find nothing new planned and only report their own resource's outcome, so a group of
resources (all planned before any runs) costs one check and one reload. A later group of the same pass that
plans more entries makes one more apply, for what is new.

When the check refuses the file, the entries are tried apart rather than all kept out: those the checker names
are left out; when it cannot tell which, the changes are split in halves on top of what is in effect, so one bad
entry among n costs about 2·log2(n) checks, and no text is checked twice in a pass. A refused entry keeps its
last good version in the file (the one in effect), or stays out when it had none, or when the version in effect
is the one refused (keeping it would hold every other change back); its resource's action raises the verdict
(a ``PermanentError`` with the checker's reason), and the entries that pass are put in effect. When the checker
cannot judge at all (its program missing or broken: it raises) or the reload fails, what is in effect stays as
it was, and every resource whose entry is not in effect gets that error.

Why actions and not a step of the core: each resource keeps its own Ready condition, set by the core from its
own plan's outcome, with no new phase in the reconciler; ``nasd plan`` shows the actions as it shows any other;
and a plugin that does not use the mechanism pays nothing for it.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, Hashable, Iterable, Mapping, TypeVar

from .errors import NasdError, PermanentError
from .planning import Action
from .state import atomic_write, fsync_dir

if TYPE_CHECKING:
    from .context import Context

E = TypeVar("E")


@dataclass(frozen=True)
class Verdict:
    """The checker's answer about one staged file.

    ``ok``: it may be put in effect (``message``: the checker's warnings, if any). Otherwise ``reason`` and
    ``message`` are what a refused resource shows (its Ready condition), and ``blamed`` the keys of the entries
    the checker named (``None``: it cannot tell which: the mechanism then finds them by trying them apart)."""

    ok: bool
    reason: str = ""
    message: str = ""
    blamed: frozenset[str] | None = None


class FileFormat(Generic[E]):
    """What a plugin knows about its shared file. ``E`` is one entry (e.g. a rendered section); entries compare
    with ``==``."""

    #: the file's mode
    mode: int = 0o644
    #: when the reload fails: put the previous file back (True: what is on disk is what the daemon serves), or keep
    #: the new one with its reload owed (False: a later pass, or the next nasd after a crash, reloads it)
    restore_on_failed_reload: bool = False

    def parse(self, text: str) -> dict[str, E]:
        """The entries of the file in effect, by key (the resource's name)."""
        raise NotImplementedError

    def render(self, entries: Mapping[str, E]) -> str | None:
        """The whole file for these entries (None: no file at all). Raises PermanentError when it cannot."""
        raise NotImplementedError

    def claims(self, entry: E) -> Iterable[Hashable]:
        """Values no two entries may share (e.g. a section name): see :meth:`SharedFile.holder`."""
        return ()

    async def prepare(self, ctx: "Context", entries: Mapping[str, E]) -> None:
        """Called once before an apply checks or writes anything (e.g. folders the checker needs)."""

    async def check(self, ctx: "Context", staged: Path, text: str) -> Verdict:
        """Judge the staged file (``text`` is its content). Raises when it cannot judge (the checking program
        missing or broken): a ``TemporaryError`` then reaches every resource whose entry is not in effect."""
        raise NotImplementedError

    async def reload(self, ctx: "Context", entries: Mapping[str, E], verdict: Verdict | None) -> bool:
        """Put the file just written in effect (``verdict``: the check of its text; None when it was not checked:
        unchanged, or no file). True when done; False when left to a later pass (the reload stays owed)."""
        return True


class SharedFile(Generic[E]):
    """The pass's view of one shared file: what is in effect, what is planned, and the one apply of both."""

    def __init__(self, path: Path, format: FileFormat[E], current: str | None, *, owed: Path | None = None,
                 in_effect: Callable[[Mapping[str, E]], bool] | None = None):
        """``current``: the file's text (None: there is none). ``owed``: a marker file kept from a write until its
        reload ran (a reload left to a later pass, or cut short by a crash, is still made). ``in_effect``: whether
        the daemon has put these applied entries in effect (besides the marker)."""
        self.path = path
        self.format = format
        self.current = current
        self.owed = owed
        self._applied: dict[str, E] = format.parse(current) if current is not None else {}
        self._planned: dict[str, E] = dict(self._applied)
        self._holders: dict[Hashable, str] = {}
        for key, entry in self._applied.items():
            for claim in format.claims(entry):
                self._holders.setdefault(claim, key)
        try:
            rendered_again = format.render(self._applied) == current
        except PermanentError:  # (edited by hand: written again)
            rendered_again = False
        #: whether the file is exactly the rendering of ``applied`` and the daemon has it in effect
        self.synced = rendered_again and not (owed is not None and owed.exists()) and (
            in_effect is None or in_effect(self._applied))
        self._version = 0  # bumped by every change of the plan
        self._tried = -1  # the version the last apply worked on
        self._rejected: dict[str, tuple[Verdict, bool]] = {}  # key -> (why, left out even in its version in effect)
        self._verdicts: dict[str, Verdict] = {}  # texts checked in this pass
        self._staged: str | None = None  # the text of the staged file, while one is there
        self._error: Exception | None = None  # why the last apply left the planned entries out of effect
        self._lock = asyncio.Lock()

    @classmethod
    def read(cls, path: Path, format: FileFormat[E], *, owed: Path | None = None,
             in_effect: Callable[[Mapping[str, E]], bool] | None = None) -> "SharedFile[E]":
        """The file as it is now (reads it; runs nothing)."""
        try:
            current: str | None = path.read_text()
        except FileNotFoundError:
            current = None
        return cls(path, format, current, owed=owed, in_effect=in_effect)

    # -- planning --------------------------------------------------------------------------------------------

    @property
    def applied(self) -> Mapping[str, E]:
        """The entries of the file in effect (as far as known)."""
        return self._applied

    @property
    def entries(self) -> Mapping[str, E]:
        """The entries as planned so far in this pass."""
        return self._planned

    def holder(self, claim: Hashable) -> str | None:
        """The key whose planned entry claims ``claim`` (see :meth:`FileFormat.claims`), if any: a resource whose
        entry would claim what another holds is refused by its plugin before it calls :meth:`set`."""
        return self._holders.get(claim)

    def needs_apply(self, key: str) -> bool:
        """Whether the file in effect lacks ``key``'s planned entry (or is not in effect at all)."""
        return not self.synced or self._applied.get(key) != self._planned.get(key)

    def set(self, key: str, entry: E) -> bool:
        """Plan ``key``'s entry; whether the file must change for it (then its plan needs :meth:`action`)."""
        if self._planned.get(key) != entry:
            self._release(key)
            self._planned[key] = entry
            for claim in self.format.claims(entry):
                self._holders.setdefault(claim, key)
            self._version += 1
        return self.needs_apply(key)

    def remove(self, key: str) -> bool:
        """Plan ``key``'s removal; whether the file must change for it."""
        if key in self._planned:
            self._release(key)
            del self._planned[key]
            self._version += 1
        return self.needs_apply(key)

    def _release(self, key: str) -> None:
        old = self._planned.get(key)
        if old is not None:
            for claim in self.format.claims(old):
                if self._holders.get(claim) == key:
                    del self._holders[claim]

    def action(self, key: str | None, description: str) -> Action:
        """The step that puts ``key``'s entry in effect (with every other planned so far); ``key`` None: the file
        as planned, for a resource that only needs it written."""
        async def run(ctx: "Context") -> None:
            await self.apply(ctx, key)
        return Action(description, func=run)

    # -- applying --------------------------------------------------------------------------------------------

    async def apply(self, ctx: "Context", key: str | None = None) -> bool:
        """Put every entry planned so far in effect, unless an earlier call of this pass did with nothing planned
        since; then raise what concerns ``key`` (its refusal, or the error that kept its entry out of effect;
        ``key`` None: any such error). Returns whether this call did the work."""
        async with self._lock:
            ran = self._tried != self._version
            if ran:
                self._tried = self._version
                self._error = None
                try:
                    await self._apply(ctx)
                except Exception as e:  # (a full disk, a plugin's bug): every action waiting for it fails with it
                    self._error = e
                finally:
                    self._unstage()
        self.raise_for(key)
        return ran

    def raise_for(self, key: str | None) -> None:
        """Raise what the last apply means for ``key``: its refusal, or the error that left its entry out of
        effect (``key`` None: any such error); nothing when its entry is in effect."""
        refused = self._rejected.get(key) if key is not None else None
        if refused is not None:
            raise PermanentError(refused[0].message, reason=refused[0].reason)
        if self._error is not None and (key is None or self.needs_apply(key)):
            raise self._error

    async def _apply(self, ctx: "Context") -> None:
        prepared = False
        for _ in range(len(self._planned) + len(self._applied) + 2):  # (each round refuses one entry at least)
            entries = self._compose()
            if self.synced and entries == self._applied:
                return
            try:
                text = self.format.render(entries)
                if not prepared:
                    await self.format.prepare(ctx, entries)
                    prepared = True
                verdict = None if text is None or text == self.current else await self._check(ctx, text)
                if verdict is None or verdict.ok:
                    await self._install(ctx, entries, text, verdict)
                    return
                if not await self._refuse(ctx, verdict):
                    self._error = PermanentError(verdict.message, reason=verdict.reason)  # the file in effect itself
                    return
            except NasdError as e:
                self._error = e
                return
        self._error = PermanentError(f"{self.path}: the checker kept refusing it; nothing changed", reason="Refused")

    def _changed(self) -> list[str]:
        """The keys whose planned entry is not the one in effect (and not refused)."""
        return sorted(k for k in self._planned.keys() | self._applied.keys()
                      if self._planned.get(k) != self._applied.get(k) and k not in self._rejected)

    def _compose(self, take: builtins.set[str] | None = None) -> dict[str, E]:
        """The entries of a candidate file: the planned version of the changes in ``take`` (None: every change),
        the version in effect of the others; a refused entry keeps its version in effect, unless that is the one
        refused, or the checker refused it too."""
        out: dict[str, E] = {}
        for key in sorted(self._planned.keys() | self._applied.keys()):
            planned, applied = self._planned.get(key), self._applied.get(key)
            if key in self._rejected:
                value = None if self._rejected[key][1] or applied == planned else applied
            else:
                value = planned if take is None or key in take else applied
            if value is not None:
                out[key] = value
        return out

    async def _refuse(self, ctx: "Context", verdict: Verdict) -> bool:
        """Leave out what the checker refused in the file of every change: the entries it names, else those found
        by trying the changes apart. Whether anything was left out (else the file in effect itself is refused)."""
        known = self._planned.keys() | self._applied.keys()
        blamed = {k for k in verdict.blamed or () if k in known and not self._rejected.get(k, (None, False))[1]}
        if blamed:
            for key in blamed:  # (named again while its version in effect was kept: now that goes too)
                self._rejected[key] = (verdict, key in self._rejected)
            return True
        changed = self._changed()
        bad = set(changed) if len(changed) <= 1 else await self._culprits(ctx, set(), changed)
        for key in bad:
            self._rejected[key] = (verdict, False)
        return bool(bad)

    async def _culprits(self, ctx: "Context", accepted: builtins.set[str], group: list[str]) -> builtins.set[str]:
        """The changes of ``group`` the checker refuses on top of ``accepted``, which grows by those it takes;
        called knowing that it refuses ``accepted`` with all of ``group``."""
        if len(group) == 1:
            return set(group)
        first, second = group[:len(group) // 2], group[len(group) // 2:]
        if (await self._try(ctx, accepted | set(first))).ok:
            accepted |= set(first)  # so the second half holds what is refused (known: no check needed)
            return await self._culprits(ctx, accepted, second)
        bad = await self._culprits(ctx, accepted, first)
        if (await self._try(ctx, accepted | set(second))).ok:
            accepted |= set(second)
            return bad
        return bad | await self._culprits(ctx, accepted, second)

    async def _try(self, ctx: "Context", take: builtins.set[str]) -> Verdict:
        text = self.format.render(self._compose(take))
        return Verdict(True) if text is None else await self._check(ctx, text)

    async def _check(self, ctx: "Context", text: str) -> Verdict:
        """Stage ``text`` beside the live file and have the plugin judge it (each text once a pass). The staged
        file stays while it is the last one accepted (it is then the one swapped in)."""
        verdict = self._verdicts.get(text)
        if verdict is not None:
            return verdict
        self._stage(text)
        verdict = await self.format.check(ctx, self.staged_path, text)
        if not verdict.ok:
            self._unstage()
        self._verdicts[text] = verdict
        return verdict

    @property
    def staged_path(self) -> Path:
        """Beside the live file, so the swap is one rename; a name the daemon never reads as a live file."""
        return self.path.with_name(f".{self.path.name}.staged")

    def _stage(self, text: str) -> None:
        atomic_write(self.staged_path, text.encode(), mode=self.format.mode, sync_dir=False)
        os.chmod(self.staged_path, self.format.mode)  # (whatever the umask)
        self._staged = text

    def _unstage(self) -> None:
        if self._staged is not None:
            self.staged_path.unlink(missing_ok=True)
            self._staged = None

    async def _install(self, ctx: "Context", entries: dict[str, E], text: str | None, verdict: Verdict | None) -> None:
        """Swap ``text`` in (or remove the file), then reload; a failed reload puts the previous file back when
        the format says so, else leaves the reload owed."""
        previous, previous_applied, was_synced = self.current, self._applied, self.synced
        owed_before = self.owed is not None and self.owed.exists()
        if text != self.current:
            if self.owed is not None:
                self.owed.parent.mkdir(parents=True, exist_ok=True)
                self.owed.touch()
            if text is None:
                self.path.unlink(missing_ok=True)
            else:
                if self._staged != text:  # (accepted earlier in this pass, then another text was staged)
                    self._stage(text)
                os.replace(self.staged_path, self.path)
                self._staged = None
                fsync_dir(self.path.parent)
            self.current, self._applied, self.synced = text, dict(entries), False
        try:
            done = await self.format.reload(ctx, entries, verdict)
        except NasdError:
            if self.format.restore_on_failed_reload and previous is not None and text != previous:
                atomic_write(self.path, previous.encode(), mode=self.format.mode)
                os.chmod(self.path, self.format.mode)
                self.current, self._applied, self.synced = previous, previous_applied, was_synced
                if self.owed is not None and not owed_before:
                    self.owed.unlink(missing_ok=True)
            raise
        self._applied = dict(entries)
        if done:
            if self.owed is not None:
                self.owed.unlink(missing_ok=True)
            self.synced = True
