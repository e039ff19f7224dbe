"""nasd's exports file as a file shared by the NFS shares (the core's :class:`~nasd.plugin.SharedFile`): an entry
is one share's line; the real ``exportfs`` parses the staged file on its own (in a private mount namespace, so
neither the live exports nor the kernel see the check), and one ``exportfs -ra`` puts the file in effect."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping

from nasd.plugin import CommandError, Context, FileFormat, PermanentError, TemporaryError, Verdict

from .render import UnsafeValue, line_share, parse, render, unescape_path
from .settings import NFSSettings

# Runs in a private mount namespace (``unshare -m``): only the staged file is in /etc/exports.d,
# /etc/exports is empty, etab lives on a tmpfs, and nfsd's control files are hidden, so exportfs
# parses and stats exactly this file and changes nothing outside. "$1": the staged file,
# "$2": the exports.d folder, "$3": exportfs (nasd's configured path). Values are arguments, never part
# of the script.
CHECK_SCRIPT = r"""
set -eu
mkdir -p /var/lib/nfs
mount -t tmpfs nasd-check /var/lib/nfs
cp "$1" /var/lib/nfs/staged
mkdir -p "$2"
mount -t tmpfs nasd-check "$2"
cp /var/lib/nfs/staged "$2/nasd.exports"
rm /var/lib/nfs/staged
if [ -e /etc/exports ]; then : > /var/lib/nfs/empty; mount --bind /var/lib/nfs/empty /etc/exports; fi
for d in /proc/fs/nfsd /proc/fs/nfs; do if [ -d "$d" ]; then mount -t tmpfs nasd-check "$d"; fi; done
exec "$3" -ra
"""
_LINE_REF = re.compile(r"nasd\.exports(?::| \[)(\d+)")
_STAT = re.compile(r"Failed to stat (.+?):")
_UNRESOLVED = re.compile(r"Failed to resolve (\S+)")
_FSID = re.compile(r"[(,]fsid=([0-9]+)[,)]")


@dataclass
class CheckResult:
    ok: bool
    message: str
    lines: set[int]  # lines of the staged file exportfs complained about
    paths: set[str]  # paths exportfs could not stat
    missing: str | None = None  # exportfs was not found: the path looked for


def program(ctx: Context) -> str:
    """exportfs as nasd runs it (``programs.exportfs``, else found on PATH or in /usr/sbin)."""
    return ctx.runner.resolve("exportfs")


def installed(path: str) -> bool:
    return "/" in path and os.path.isfile(path) and os.access(path, os.X_OK)


async def check(ctx: Context, staged: Path, exports_dir: Path) -> CheckResult:
    exportfs = program(ctx)
    if not installed(exportfs):
        return CheckResult(False, f"{exportfs}: program not found", set(), set(), missing=exportfs)
    result = await ctx.runner.run(["unshare", "-m", "--propagation", "private", "sh", "-c", CHECK_SCRIPT,
                                   "nasd-nfs-check", str(staged), str(exports_dir), exportfs],
                                  mutating=False, check=False)
    message = "\n".join(line for line in (result.stderr + result.stdout).splitlines() if line.strip())
    lines = {int(m) for m in _LINE_REF.findall(message)}
    paths = set(_STAT.findall(message))
    return CheckResult(result.returncode == 0, message, lines, paths,
                       missing=exportfs if result.returncode == 127 and not installed(exportfs) else None)


async def works(ctx: Context, exports_file: Path) -> CheckResult:
    """exportfs's answer about an empty exports file: whether exportfs itself works (when it refused a file
    and named nothing in it)."""
    empty = exports_file.with_name(f".{exports_file.name}.empty")
    empty.write_text("")
    try:
        return await check(ctx, empty, exports_file.parent)
    finally:
        empty.unlink(missing_ok=True)


async def reload(ctx: Context) -> str:
    """``exportfs -ra``: every exports file in effect (the kernel's table follows). Returns its warnings."""
    result = await ctx.runner.run(["exportfs", "-ra"], mutating=True)
    return result.stderr.strip()


def path_claim(path: str) -> Hashable:
    return ("path", path)


def fsid_claim(fsid: int) -> Hashable:
    return ("fsid", fsid)


def line_path(line: str) -> str:
    return unescape_path(line.split(" ", 1)[0])


class ExportsFile(FileFormat[str]):
    """nasd's exports file: a line per share (no file at all when nasd exports nothing). A failed ``exportfs -ra``
    leaves the file written and its reload owed: exportfs puts it in effect once it works."""

    def __init__(self, settings: NFSSettings, unresolved: Callable[[Context, dict[str, list[str]]], None]):
        self.settings = settings
        self.unresolved = unresolved  # told, after each reload, which hosts of which share exportfs could not resolve
        self._works: CheckResult | None = None  # exportfs's answer about an empty file (asked once a pass)

    def parse(self, text: str) -> dict[str, str]:
        return parse(text)

    def render(self, entries: Mapping[str, str]) -> str | None:
        try:
            return render(dict(entries)) if entries else None
        except UnsafeValue as e:
            raise PermanentError(f"the exports file is not written: {e}", reason="UnsafeValue") from None

    def claims(self, entry: str) -> Iterable[Hashable]:
        fsid = _FSID.search(entry)
        return (path_claim(line_path(entry)), *([fsid_claim(int(fsid.group(1)))] if fsid else []))

    async def check(self, ctx: Context, staged: Path, text: str) -> Verdict:
        result = await check(ctx, staged, self.settings.exportsFile.parent)
        if result.ok:
            return Verdict(True, message=result.message)
        message = result.message or "exportfs failed"
        if result.missing:
            raise _missing(ctx, result.missing)
        if "program not found" in message:
            raise PermanentError(f"exportfs's check needs unshare, which is not installed ({message}): install "
                                 "util-linux; the exports in effect are unchanged", reason="UnshareMissing")
        blamed = {s for s in (line_share(text, n) for n in result.lines) if s}
        blamed |= {share for share, line in parse(text).items() if line_path(line) in result.paths}
        if not blamed:  # exportfs's fault or the file's? ask it about an empty one
            if self._works is None:
                self._works = await works(ctx, self.settings.exportsFile)
            if self._works.missing:
                raise _missing(ctx, self._works.missing)
            if not self._works.ok:
                raise _logged(ctx, f"exportfs ({program(ctx)}) fails even on an empty exports file: "
                              f"{(self._works.message or 'no message')[:400]}; repair it (apt-get install --reinstall "
                              "nfs-kernel-server) or see its message. The exports in effect are unchanged: nasd's "
                              "exports file is changed once exportfs can check it", reason="ExportfsFailed")
        return Verdict(False, reason="ExportfsRefused", message=f"exportfs refused this share's export: {message}",
                       blamed=frozenset(blamed) or None)

    async def reload(self, ctx: Context, entries: Mapping[str, str], verdict: Verdict | None) -> bool:
        """``exportfs -ra`` (in the daemon, after a short wait: a burst of edits reloads once)."""
        warnings = verdict.message if verdict is not None else ""
        settle = self.settings.reloadSettleSeconds
        if ctx.watch and settle and entries:  # the last unexport never waits: no later pass would see it
            await asyncio.sleep(settle)
            if ctx.changes_pending():  # more edits are coming: the next pass runs exportfs once for all
                ctx.log.info("exports file written; exportfs -ra waits for the rest of this burst")
                return False
        try:
            warnings += "\n" + await reload(ctx)
        except CommandError as e:
            if e.returncode == 127 and not installed(program(ctx)):
                raise _missing(ctx, program(ctx)) from None
            raise _logged(ctx, f"exportfs -ra failed: {(e.stderr.strip() or str(e))[:400]}; the exports file is "
                                 "written and put in effect once exportfs -ra works (until then the previous exports "
                                 "stay in effect): see exportfs's message", reason="ExportfsFailed") from None
        if warnings.strip():
            ctx.log.warning("exportfs: %s", warnings.strip())
        hosts = set(_UNRESOLVED.findall(warnings))
        unresolved: dict[str, list[str]] = {}  # share -> its hosts exportfs could not resolve (it exports to the others)
        for share, line in entries.items():
            mine = sorted(h for h in hosts if f" {h}(" in f" {line}")
            if mine:
                unresolved[share] = mine
        self.unresolved(ctx, unresolved)
        return True


def _missing(ctx: Context, path: str) -> TemporaryError:
    return _logged(ctx, f"exportfs is not installed (not found: {path}): install nfs-kernel-server (apt-get install "
                   "nfs-kernel-server) or set programs.exportfs in nasd's configuration. The exports in effect are "
                   "unchanged: nasd's exports file is changed once exportfs can check it", reason="ExportfsMissing")


def _logged(ctx: Context, message: str, reason: str) -> TemporaryError:
    """exportfs missing or broken: retried with backoff (no share is to blame), and said in the log."""
    ctx.log.warning("%s: %s", reason, message)
    return TemporaryError(message, reason=reason, delay=1.0)
