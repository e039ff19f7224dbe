"""Putting a new exports file in effect: stage it, let the real ``exportfs`` parse it on its own
(in a private mount namespace, so neither the live exports nor the kernel see the check), swap it
in atomically, then one ``exportfs -ra``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nasd.context import Context

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


@dataclass
class CheckResult:
    ok: bool
    message: str
    lines: set[int]  # lines of the staged file exportfs complained about
    paths: set[str]  # paths exportfs could not stat
    missing: str | None = None  # exportfs was not found: the path looked for


def staged_path(exports_file: Path) -> Path:
    # not ending in ".exports": exportfs never reads it as a live file
    return exports_file.with_name(f".{exports_file.name}.staged")


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


def write_staged(exports_file: Path, text: str) -> Path:
    exports_file.parent.mkdir(parents=True, exist_ok=True)
    staged = staged_path(exports_file)
    with open(staged, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(staged, 0o644)
    return staged


def swap(staged: Path, exports_file: Path) -> None:
    os.replace(staged, exports_file)


def remove(exports_file: Path) -> None:
    exports_file.unlink(missing_ok=True)


async def reload(ctx: Context) -> str:
    """``exportfs -ra``: every exports file in effect (the kernel's table follows). Returns its warnings."""
    result = await ctx.runner.run(["exportfs", "-ra"], mutating=True)
    return result.stderr.strip()
