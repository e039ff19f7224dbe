"""systemd's service protocol for ``nasd serve`` (``Type=notify``): a small sd_notify client, no dependency.

- ``READY=1`` once the first reconcile pass is done (so ``systemctl start nasd`` returns with the pools
  imported and the datasets mounted), with a ``STATUS=`` line saying how many resources are Ready;
- ``WATCHDOG=1`` every ``WATCHDOG_USEC``/2, sent by a task on the event loop: a wedged loop stops pinging
  and systemd restarts the daemon (``WatchdogSec=`` in the unit);
- ``STOPPING=1`` when the daemon starts shutting down.

Without ``NOTIFY_SOCKET`` in the environment (not started by systemd) nothing is sent and no task runs.
The variables are taken out of the environment, so the programs nasd starts (smbd, which speaks the same
protocol) never notify systemd in nasd's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import AsyncIterator, Callable, MutableMapping

log = logging.getLogger("nasd.service")

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(value: str) -> str | bytes | None:
    """The socket address systemd gave: a path, or ``@name`` for an abstract socket (a leading NUL byte)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # e.g. vsock:...: not for a local daemon


class Notifier:
    """Sends sd_notify messages; a no-op when systemd did not ask for them."""

    def __init__(self, address: str | bytes | None, watchdog_seconds: float | None = None):
        self.address = address
        #: seconds between two pings (half of WatchdogSec=), None without a watchdog
        self.watchdog_seconds = watchdog_seconds
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> "Notifier":
        """Read (and remove) NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID."""
        env = os.environ if environ is None else environ
        values = {name: env.pop(name, None) for name in _VARIABLES}
        address = _address(values["NOTIFY_SOCKET"] or "")
        if values["NOTIFY_SOCKET"] and address is None:
            log.warning("NOTIFY_SOCKET=%s is not a Unix socket: not notifying systemd", values["NOTIFY_SOCKET"])
        interval = None
        usec, pid = values["WATCHDOG_USEC"], values["WATCHDOG_PID"]
        if address is not None and usec and usec.isdigit() and int(usec) > 0 \
                and (not pid or pid == str(os.getpid())):  # the watchdog may be meant for another process
            interval = int(usec) / 2e6
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send one message (``KEY=value`` lines); False when it could not be sent (logged once)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as e:
            if not self._warned:
                log.warning("cannot notify systemd through %r: %s", self.address, e)
                self._warned = True
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _ping(self, status: Callable[[], str] | None) -> None:
        assert self.watchdog_seconds is not None
        last = ""
        while True:
            fields = ["WATCHDOG=1"]
            line = status() if status else ""
            if line and line != last:
                fields.append(f"STATUS={line}")
                last = line
            self.notify(*fields)
            await asyncio.sleep(self.watchdog_seconds)

    @contextlib.asynccontextmanager
    async def watchdog(self, status: Callable[[], str] | None = None) -> AsyncIterator[None]:
        """Ping the watchdog from this event loop while inside (and refresh STATUS= when it changes)."""
        task = asyncio.create_task(self._ping(status), name="watchdog") if self.watchdog_seconds else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def ready_when(self, event: asyncio.Event, status: Callable[[], str]) -> None:
        """``READY=1`` (with a STATUS= line) once ``event`` is set."""
        await event.wait()
        self.notify("READY=1", f"STATUS={status()}")
        log.info("ready: %s", status())

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")
