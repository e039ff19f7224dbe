"""The one way nasd runs a program: argv only (never a shell), with a timeout, kept stderr,
"busy" retried with backoff, every argv logged and counted for metrics.

Every plugin goes through ``Context.runner``, so tests and benchmarks can count spawns
and ``nasd plan`` can be sure nothing mutating runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .errors import CommandError

log = logging.getLogger("nasd.runner")

#: stderr fragments that mean "try again in a moment"
TRANSIENT_MARKERS = ("dataset is busy", "pool is busy", "resource busy", "device busy", "target is busy", "try again")

#: the arguments of a read a record of ``Runner.spawns`` keeps (the rest is counted; a change is kept whole)
KEEP_ARGS = 32

#: programs that change one locked file (shadow's /etc/passwd, /etc/group; Samba's passdb): run one at a time,
#: so concurrent actions queue here rather than in the program's own lock (shadow sleeps 1 s per failed try)
ACCOUNT_PROGRAMS = ("useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "smbpasswd", "pdbedit")


@dataclass
class Bound:
    """At most ``limit`` commands of some programs at once (``mutating_only``: reads are not counted)."""

    limit: int
    mutating_only: bool = True
    gate: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.gate = asyncio.Semaphore(self.limit)

    def applies(self, mutating: bool) -> bool:
        return mutating or not self.mutating_only


def _account_bounds() -> dict[str, Bound]:
    bound = Bound(1)
    return {program: bound for program in ACCOUNT_PROGRAMS}


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Spawn:
    argv: list[str]
    mutating: bool
    seconds: float
    returncode: int
    stderr: str = ""


@dataclass
class Runner:
    """Runs programs found on PATH unless ``programs`` names a path for them."""

    programs: Mapping[str, str] = field(default_factory=dict)
    default_timeout: float = 120.0
    busy_retries: int = 5
    busy_delay: float = 0.15
    #: when set, mutating commands are refused (``nasd plan`` and read-only tools)
    read_only: bool = False
    counts: Counter = field(default_factory=Counter)
    spawns: list[Spawn] = field(default_factory=list)
    listeners: list[Callable[[Spawn], None]] = field(default_factory=list)
    #: program name (as plugins name it in argv, before ``programs`` resolves it) -> its bound, shared by the
    #: programs bounded together (see :meth:`bound`)
    bounds: dict[str, Bound] = field(default_factory=_account_bounds)
    #: how many records ``spawns`` keeps (the oldest half goes when it is full; ``nasd serve`` keeps fewer)
    keep: int = 10000

    def bound(self, programs: Iterable[str], limit: int, *, mutating_only: bool = True) -> None:
        """Run at most ``limit`` commands of ``programs`` (together) at once; later calls replace the bound.
        E.g. the ZFS plugin makes zfs-fuse's ``zfs`` and ``zpool`` serial: concurrent changes can hang it."""
        if limit < 1:
            raise ValueError(f"a bound must be at least 1, not {limit}")
        shared = Bound(limit, mutating_only)
        for program in programs:
            self.bounds[program] = shared

    def resolve(self, program: str) -> str:
        if "/" in program:
            return program
        configured = self.programs.get(program)
        if configured:
            return configured
        found = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        return found or program

    async def run(
        self,
        argv: list[str],
        *,
        mutating: bool,
        timeout: float | None = None,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run ``argv``; raise CommandError on a non-zero exit when ``check`` (busy is retried first)."""
        if self.read_only and mutating:
            raise RuntimeError(f"refusing to run a mutating command in read-only mode: {argv}")
        if not argv or any(not isinstance(a, str) or "\0" in a for a in argv):
            raise ValueError(f"invalid argv: {argv!r}")
        full = [self.resolve(argv[0]), *argv[1:]]
        attempt = 0
        bound = self.bounds.get(argv[0].rsplit("/", 1)[-1])
        while True:
            if bound is not None and bound.applies(mutating):
                async with bound.gate:  # (released while a busy command waits to be retried)
                    result = await self._spawn(full, mutating, timeout or self.default_timeout, input, env)
            else:
                result = await self._spawn(full, mutating, timeout or self.default_timeout, input, env)
            if result.returncode == 0 or not check:
                return result
            transient = any(m in result.stderr.lower() for m in TRANSIENT_MARKERS)
            if transient and attempt < self.busy_retries:
                attempt += 1
                log.info("busy, retrying", extra={"argv": full, "attempt": attempt})
                await asyncio.sleep(self.busy_delay * (2 ** (attempt - 1)))
                continue
            raise CommandError(full, result.returncode, result.stdout, result.stderr, transient=transient)

    async def _spawn(
        self, argv: list[str], mutating: bool, timeout: float, input: str | None, env: Mapping[str, str] | None
    ) -> Result:
        start = time.monotonic()
        program = argv[0].rsplit("/", 1)[-1]
        verb = next((a for a in argv[1:] if not a.startswith("-")), "")
        self.counts[(program, verb)] += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env} if env else None,
                start_new_session=True,
            )
        except FileNotFoundError:
            spawn = Spawn(argv, mutating, 0.0, 127)
            self._record(spawn)
            return Result(argv, 127, "", f"{argv[0]}: program not found (install it or set its path)")
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), timeout
            )
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            out, err = b"", f"timed out after {timeout:.0f}s".encode()
            proc.returncode = 124 if proc.returncode in (None, -9) else proc.returncode
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        seconds = time.monotonic() - start
        rc = proc.returncode if proc.returncode is not None else -1
        stderr = err.decode(errors="replace")
        self._record(Spawn(argv, mutating, seconds, rc, stderr[:2000]))
        log.debug("ran", extra={"argv": argv, "rc": rc, "seconds": round(seconds, 4), "mutating": mutating})
        return Result(argv, rc, out.decode(errors="replace"), stderr)

    def _record(self, spawn: Spawn) -> None:
        for listener in self.listeners:
            listener(spawn)
        if not spawn.mutating and len(spawn.argv) > KEEP_ARGS:  # (a `zfs get` naming every file system: kept short)
            spawn = Spawn([*spawn.argv[:KEEP_ARGS], f"... {len(spawn.argv) - KEEP_ARGS} more"], spawn.mutating,
                          spawn.seconds, spawn.returncode, spawn.stderr)
        self.spawns.append(spawn)
        if len(self.spawns) > self.keep:
            del self.spawns[:len(self.spawns) - self.keep // 2]
