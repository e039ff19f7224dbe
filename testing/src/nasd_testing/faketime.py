"""``nasd serve`` on a wall clock the test moves, for tests of clock jumps.

The jump is real for the process: libfaketime (Debian package ``faketime``) is preloaded into ``nasd serve`` with
``FAKETIME_TIMESTAMP_FILE`` (re-read on every call: ``FAKETIME_NO_CACHE=1``), so the test moves the daemon's wall
clock while it runs, and, as a real jump of the system clock does, leaves its monotonic clock alone
(``DONT_FAKE_MONOTONIC=1``). The programs nasd runs (zfs-fuse's commands) are not under it."""

from __future__ import annotations

import contextlib
import os
import time
from glob import glob
from pathlib import Path
from typing import Any, Iterator

import pytest

from .clock import utc
from .serve import Server, serving

LIBFAKETIME = next(iter(glob("/usr/lib/*/faketime/libfaketime.so.1")), None)


class FakeClock:
    """The wall clock of the processes started with :meth:`env`: real time plus an offset the test sets."""

    def __init__(self, folder: Path):
        self.file = folder / "faketime"
        self.offset = 0
        self.shift(0)

    def shift(self, offset: int) -> None:
        """From now on the clock is ``offset`` seconds ahead of real time (behind: negative)."""
        self.offset = offset
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{offset:+d}\n")
        os.replace(tmp, self.file)

    def set(self, text: str) -> None:
        """From now on the clock reads ``text`` (UTC), and runs on at real speed."""
        self.shift(round(utc(text) - time.time()))

    def now(self) -> float:
        return time.time() + self.offset

    def env(self) -> dict[str, str]:
        assert LIBFAKETIME
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1",
                "DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def fake_clock(tmp_path: Path) -> FakeClock:
    """A :class:`FakeClock` at real time; the test is skipped without libfaketime (failed under
    NASD_REQUIRE_ZFS, as ``make test`` runs it)."""
    if LIBFAKETIME is None:
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail("libfaketime is not installed (make test installs faketime)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return FakeClock(tmp_path)


@contextlib.contextmanager
def serving_at(pool_env: Any, tmp_path: Path, clock: FakeClock, manifests: Path, **config: Any) -> Iterator[Server]:
    """``nasd serve --manifests manifests`` with its wall clock on ``clock`` and ``config`` added to the test's
    config; SIGTERM at the end (a server that ignores it fails the test)."""
    with serving(pool_env, tmp_path, env=clock.env(), **config) as start:
        server = start(manifests)
        try:
            yield server
        finally:
            server.stop()
