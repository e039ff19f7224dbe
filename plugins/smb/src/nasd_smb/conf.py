"""smb.conf as a file shared by the SMB shares (the core's :class:`~nasd.plugin.SharedFile`): an entry is one
share's section; `testparm -s` judges the staged file, `smbcontrol smbd reload-config` puts it in effect."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping

from nasd.plugin import CommandError, Context, FileFormat, NASDirectory, PermanentError, TemporaryError, Verdict

from . import smbd
from .render import _TAG, UnsafeValue, parse_sections, parse_shares, render_file, section_name
from .settings import SMBSettings

log = logging.getLogger("nasd.smb")


class SmbConf(FileFormat[str]):
    """nasd's smb.conf: the [global] section (from the settings, the directories and what other plugins add),
    then one section per share. On a failed reload the previous file is put back: smbd's children read the
    file when it changes, and must keep serving what their parent serves."""

    restore_on_failed_reload = True

    def __init__(self, settings: SMBSettings, directories: list[NASDirectory], extra_global: dict[str, str],
                 parsed: dict[str, dict[str, str]] | None = None, rendered: dict[str, Any] | None = None):
        """``parsed``: what :meth:`parse` found in each section before; ``rendered``: the last file :meth:`render`
        made, with what it was made of (both the plugin's, kept from pass to pass)."""
        self.settings = settings
        self._parsed = parsed if parsed is not None else {}
        self._rendered = rendered if rendered is not None else {}
        self.directories = directories
        self.extra_global = extra_global
        self._testparm_works: tuple[int, str, str] | None = None  # testparm's answer on an empty file (this pass)
        #: the file in effect when the pass began, when it is exactly what nasd rendered (so its [global] and each
        #: of its sections passed testparm): a candidate with the same [global] is checked on its new sections only
        self.baseline: str | None = None

    def parse(self, text: str) -> dict[str, str]:
        """The file's sections (:func:`parse_sections`). Each section nasd wrote is parsed once: a file of a
        thousand shares with one new is parsed for that one (the others' results are kept from the passes before)."""
        blocks = text.split("\n\n")
        if not all(block.startswith(_TAG) for block in blocks[1:]):
            return parse_sections(text)  # (not as render_file lays it out: read as a whole)
        # each section starts with its tag line, which ends what came before: parsing one by one is parsing it all
        out = parse_sections(blocks[0])
        seen: dict[str, dict[str, str]] = {}
        for block in blocks[1:]:
            found = self._parsed.get(block)
            if found is None:
                found = parse_sections(block)
            seen[block] = found
            for key, section in found.items():
                out.setdefault(key, section)
        self._parsed.clear()  # (only what the file has now: the cache never grows past the file)
        self._parsed.update(seen)
        return out

    def render(self, entries: Mapping[str, str]) -> str:
        made_of = (self.settings, self.directories, self.extra_global, list(entries.items()))
        if self._rendered.get("of") == made_of:  # (the file of the last pass, asked again when it is read)
            return str(self._rendered["text"])
        try:
            text = render_file(self.settings, self.directories, entries.values(), self.extra_global)
            self._rendered.update({"of": made_of, "text": text})
            return text
        except UnsafeValue as e:  # e.g. a global setting; the shares were checked one by one already
            raise PermanentError(f"smb.conf not written: {e}", reason="UnsafeValue") from None

    def claims(self, entry: str) -> Iterable[Hashable]:
        return (name_claim(section_name(entry)),)

    async def prepare(self, ctx: Context, entries: Mapping[str, str]) -> None:
        smbd.prepare_dirs(self.settings, ctx.state_dir)  # (testparm checks the lock directory exists)
        adopt_time_machine_databases(ctx, entries.values())

    async def check(self, ctx: Context, staged: Path, text: str) -> Verdict:
        """`testparm -s` on the staged file. Raises TemporaryError when testparm itself is missing or broken (no
        share is to blame: each is tried again with backoff, and smbd keeps serving the running file meanwhile)."""
        judged = self._changed_part(staged, text)
        try:
            result = await ctx.runner.run(["testparm", "-s", str(judged)], mutating=False, check=False)
        finally:
            if judged != staged:
                judged.unlink(missing_ok=True)
        control = (result.returncode, result.stdout, result.stderr)
        if result.returncode != 0:  # testparm's fault or the file's? ask it about a file with nothing in it
            control = await self._control(ctx, staged)
        program = ctx.runner.resolve("testparm")
        returncode, stdout, stderr = control
        said = "; ".join(ln.strip() for ln in (stderr + stdout).splitlines() if ln.strip())[:400]
        if returncode == 127 and "program not found" in stderr:
            raise _logged(f"testparm is not installed (not found: {program}): install samba-common-bin (apt-get "
                          "install samba-common-bin) or set programs.testparm in nasd's configuration; "
                          "smb.conf is not changed until testparm can check it (smbd keeps serving the "
                          "running one)", reason="TestparmMissing")
        if returncode != 0:
            raise _logged(f"testparm ({program}) fails even on an empty smb.conf, with exit status "
                          f"{returncode}: {said or 'no message'}; repair it (apt-get install --reinstall "
                          "samba-common-bin) or see its message; smb.conf is not changed until testparm works "
                          "(smbd keeps serving the running one)", reason="TestparmFailed")
        # testparm exits 0 even on unknown parameters: its stderr says what it ignored
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        bad = [ln for ln in lines if "Unknown parameter" in ln or "Ignoring" in ln]
        if result.returncode != 0 or bad:
            detail = [ln for ln in lines if not ln.startswith(("Load smb config files", "Loaded services file"))]
            return Verdict(False, reason="ConfigRejected", message="testparm rejected the new smb.conf (the running "
                           "one is unchanged): " + "; ".join(detail)[:800])
        return Verdict(True)

    def _changed_part(self, staged: Path, text: str) -> Path:
        """What testparm is to read for ``text``: the staged file itself, or, when ``text`` keeps the [global] of the
        file in effect (:attr:`baseline`) and most of its sections, a file beside it of that [global] and the
        sections new or changed in ``text`` only: testparm judges each section on its own (a duplicate name is
        refused before: :meth:`claims`), so the sections in effect need no second look, and a share added to a
        thousand costs a check of one."""
        if self.baseline is None:
            return staged
        old, new = _blocks(self.baseline), _blocks(text)
        if old[0] != new[0]:
            return staged
        known = set(old[1:])
        fresh = [block for block in new[1:] if block not in known]
        if 2 * len(fresh) > len(new):
            return staged
        part = staged.with_name(f".{self.settings.config_file.name}.changed")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n\n".join([new[0], *fresh]) + "\n")
        return part

    async def _control(self, ctx: Context, staged: Path) -> tuple[int, str, str]:
        """testparm's answer about an empty smb.conf (asked once a pass)."""
        if self._testparm_works is None:
            empty = staged.with_name(f".{self.settings.config_file.name}.empty")
            empty.write_text("")
            try:
                result = await ctx.runner.run(["testparm", "-s", str(empty)], mutating=False, check=False)
            finally:
                empty.unlink(missing_ok=True)
            self._testparm_works = (result.returncode, result.stdout, result.stderr)
        return self._testparm_works

    async def reload(self, ctx: Context, entries: Mapping[str, str], verdict: Verdict | None) -> bool:
        """Tell smbd to read the file (when one runs: a supervised smbd not started yet reads it at its start)."""
        settings = self.settings
        if settings.mode != "system" and smbd.smbd_pid(settings) is None:
            return True
        try:
            await ctx.runner.run(["smbcontrol", "-s", str(settings.config_file), "smbd", "reload-config"],
                                 mutating=True)
        except CommandError as e:
            if settings.mode == "system" and smbd.smbd_pid(settings) is None:
                log.info("smbd is not running: it reads the new smb.conf when it starts")
                return True
            # (the old file is put back, so that the next pass sees the difference and tries again)
            said = (e.stderr.strip() or e.stdout.strip() or f"exit status {e.returncode}")[:400]
            if e.returncode == 127 and "program not found" in e.stderr:
                raise _logged(f"smbcontrol is not installed (not found: {e.argv[0]}), so smbd cannot be told "
                              "to reload: install samba-common-bin (apt-get install samba-common-bin) or set "
                              "programs.smbcontrol in nasd's configuration; smbd keeps serving the previous "
                              "smb.conf until then", reason="SmbcontrolMissing") from None
            raise _logged(f"smbcontrol smbd reload-config failed with exit status {e.returncode}: {said}; "
                          "smbd keeps serving the previous smb.conf (nasd tries again with backoff): see "
                          "smbcontrol's message (apt-get install --reinstall samba-common-bin if it is "
                          "broken)", reason="SmbcontrolFailed") from None
        return True


def _blocks(text: str) -> list[str]:
    """A rendered smb.conf's [global] (with the header), then each share's section (render_file: one blank line
    between them; no value holds a newline)."""
    return [block.strip("\n") for block in text.split("\n\n")]


def _logged(message: str, reason: str) -> TemporaryError:
    """A missing or broken Samba tool: retried with backoff (no share is to blame), and said in the log."""
    log.warning("%s: %s", reason, message)
    return TemporaryError(message, reason=reason, delay=1.0)


def adopt_time_machine_databases(ctx: Context, sections: Iterable[str]) -> None:
    """Before nasd kept the extended attributes of a file system without them for every share, the Time Machine
    plugin kept them for its shares, in ``<stateDir>/timemachine-<share>.tdb``: such a file becomes the
    dataset's database (once; never over one that exists), so the streams it holds are not lost."""
    if not any(ctx.state_dir.glob("timemachine-*.tdb")):  # (one listing: usually there is none left to move)
        return
    sections = [s for s in sections if "xattr_tdb:file" in s]  # (the one parameter looked at here)
    for config in parse_shares("\n".join(sections)).values():
        new = config.options.get("xattr_tdb:file")
        old = ctx.state_dir / f"timemachine-{re.sub(r'[^A-Za-z0-9_.-]', '_', config.resource)}.tdb"
        if not new or not old.exists():
            continue
        if not os.path.exists(new):
            shutil.move(str(old), new)  # (copies where runDir is on another file system)
            ctx.log.info("moved %s to %s (the dataset's extended attributes)", old, new)
        else:  # a second Time Machine share on the same dataset: its old database cannot be merged
            ctx.log.warning("%s is left as it is: the dataset of share %s has a database already (%s); its "
                            "streams are not served", old, config.resource, new)


def name_claim(name: str) -> Hashable:
    """What a share's section claims in smb.conf: its name (share names are case-insensitive)."""
    return ("share name", name.lower())
