"""Samba's processes: its folders, and (in supervised mode) smbd itself: started with the daemon, restarted if it
dies, stopped at the end together with the samba-dcerpcd helpers it spawned. (smb.conf is checked and reloaded
in :mod:`.conf`.)"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import time
from pathlib import Path
from typing import AbstractSet

from nasd.plugin import Context, PermanentError

from .settings import SMBSettings

log = logging.getLogger("nasd.smb")
#: Samba's folders under the run folder, with the modes Samba itself creates them with. smbd's children
#: act as the share's user and must reach the lock folder (each checks that the others are alive by their
#: file in ``msg.lock``: if it cannot, it takes them for dead and drops their share modes and locks) and
#: ncalrpc (the RPC sockets); what only root may read stays 0700: the passdb and Samba's secrets
#: (``private``), the logs, and the extended attributes kept for file systems without them (``xattrs``).
DIR_MODES = {
    "lock": 0o755, "state": 0o755, "cache": 0o755, "pid": 0o755, "ncalrpc": 0o755,
    "private": 0o700, "binddns": 0o700, "log": 0o700, "xattrs": 0o700,
}
RUN_SUBDIRS = tuple(DIR_MODES)


def prepare_dirs(settings: SMBSettings, own: Path | None = None) -> None:
    """Samba's folders with :data:`DIR_MODES` (modes set again where they differ: an upgrade heals), the run
    folder 0755. Every folder above it must let others pass (o+x), or smbd's children could not reach the
    lock folder: folders inside ``own`` (nasd's state folder, whose files are 0600) are given o+x, any
    other is reported. Raises PermanentError."""
    run = settings.run_dir
    run.mkdir(parents=True, exist_ok=True, mode=0o755)
    _set_mode(run, 0o755)
    for sub, mode in DIR_MODES.items():
        (run / sub).mkdir(exist_ok=True, mode=mode)
        _set_mode(run / sub, mode)
    for parent in run.resolve().parents:
        st = parent.stat()
        if st.st_mode & 0o001:
            continue
        if own is not None and (parent == own.resolve() or own.resolve() in parent.parents):
            os.chmod(parent, (st.st_mode & 0o7777) | 0o001)
            continue
        raise PermanentError(f"smbd's processes acting as share users cannot reach {run / 'lock'}: {parent} "
                             f"is mode {st.st_mode & 0o7777:04o}; let others pass (chmod o+x {parent}) or set "
                             "plugins.smb.runDir below a folder they can pass", reason="SambaDirUnreachable")


def _set_mode(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def smbd_pid(settings: SMBSettings) -> int | None:
    try:
        pid = int((settings.run_dir / "pid" / "smbd.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def samba_processes(config: Path, pids: list[int] | None = None) -> list[tuple[int, str]]:
    """(pid, program) of every smbd, samba-dcerpcd and rpcd_* process (of ``pids``, or all) running with
    ``config`` as its configuration file: those nasd started, and those an earlier nasd left behind."""
    found = []
    wanted = (f"--configfile={config}".encode(), str(config).encode())
    entries = [Path(f"/proc/{pid}") for pid in pids] if pids is not None else Path("/proc").iterdir()
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(cmdline[0].decode(errors="replace")) if cmdline and cmdline[0] else ""
        if (name == "smbd" or name.startswith("samba-dcerpcd") or name.startswith("rpcd_")) \
                and any(arg in wanted for arg in cmdline):
            found.append((int(entry.name), name))
    return found


async def stop_samba(config: Path, besides: AbstractSet[int] = frozenset(), grace: float = 5.0) -> list[tuple[int, str]]:
    """Stop every Samba process running with ``config`` (but ``besides``): SIGTERM, then SIGKILL what still runs
    after ``grace`` seconds. Each is held by a pidfd from the moment its command line is checked, so a pid the
    kernel gives to another process meanwhile is never signalled. Returns (pid, program) of those stopped."""
    held: list[tuple[int, str, int]] = []
    for pid, name in samba_processes(config):
        if pid in besides:
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if (pid, name) in samba_processes(config, [pid]):  # still the same process, now pinned by the pidfd
            held.append((pid, name, fd))
        else:
            os.close(fd)
    try:
        for _, _, fd in held:
            _signal(fd, signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + grace
        while any(not _exited(fd) for _, _, fd in held) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for pid, name, fd in held:
            if not _exited(fd):
                log.warning("%s %s did not stop on SIGTERM: killed", name, pid)
                _signal(fd, signal.SIGKILL)
    finally:
        for _, _, fd in held:
            os.close(fd)
    return [(pid, name) for pid, name, _ in held]


def _signal(pidfd: int, sig: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass


def _exited(pidfd: int) -> bool:
    """Whether the process is gone (a pidfd turns readable when it exits; a zombie counts as gone)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


class Supervisor:
    """Runs smbd in the foreground as a child of nasd and keeps it running.

    Before each start it stops every Samba process running with nasd's smb.conf that it does not supervise (what
    a killed nasd left: it holds the port and the pid file, and no one would restart it if it died; or what a
    dead smbd's children left) and starts clean, rather than taking it over: a process nasd did not start cannot be waited for, so its death would go
    unnoticed. smbd dies with nasd (the kernel signals it when nasd dies, even of SIGKILL) and takes its
    children with it."""

    #: how long smbd must have run for a restart after its death to start again from the shortest delay
    STABLE_SECONDS = 30.0
    MAX_DELAY = 30.0

    def __init__(self, ctx: Context, settings: SMBSettings):
        self.ctx = ctx
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self.next_start: float | None = None  # (monotonic) when the watcher starts smbd again
        self.failure: str | None = None  # why the last start failed
        self.started_at = 0.0
        self._stopping = False
        self._task: asyncio.Task | None = None

    @property
    def supervising(self) -> bool:
        """smbd started once: from then on the watcher restarts it."""
        return self._task is not None

    def serving(self) -> bool:
        """Whether the smbd nasd started runs and is the one the pid file names (the one clients reach)."""
        return self.proc is not None and self.proc.returncode is None and smbd_pid(self.settings) == self.proc.pid

    def down_reason(self) -> tuple[str, str]:
        """(reason, message) for shares while :meth:`serving` is False."""
        if self.failure:
            return "SmbdFailed", self.failure
        wait = ""
        if self.next_start is not None:
            wait = f"; starting it again in {max(0.0, self.next_start - time.monotonic()):.0f} s"
        rc = self.last_exit
        how = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"status {rc}"
        return "SmbdNotRunning", (f"smbd exited ({how}; restarted {self.restarts} times so far){wait}: clients "
                                  f"cannot reach the share until it runs again; see {self.settings.run_dir / 'log'}")

    async def _stop_leftovers(self) -> None:
        """(Only processes whose command line names nasd's smb.conf: a pid file may be stale, its pid another's.
        A dead smbd's children go too, their clients' sessions with them: the clients reconnect.)"""
        own = {self.proc.pid} if self.proc is not None and self.proc.returncode is None else set()
        left = [(pid, name) for pid, name in samba_processes(self.settings.config_file) if pid not in own]
        if not left:
            return
        log.warning("stopping Samba processes running with %s that nasd does not supervise (an earlier nasd left "
                    "them, or a dead smbd's children: they hold the port and pid file, and nothing would restart "
                    "them): %s", self.settings.config_file,
                    ", ".join(f"{name} {pid}" for pid, name in left))
        await stop_samba(self.settings.config_file, besides=own)

    async def start(self) -> None:
        """Start smbd and wait until it serves: it wrote its pid file, listens on its port, and logged no address
        it should listen on as taken (smbd goes on with the others then). Raises PermanentError (what smbd
        said, the port's holder), with smbd stopped again."""
        smbd = self.ctx.runner.resolve("smbd")
        setpriv = self.ctx.runner.resolve("setpriv")
        prepare_dirs(self.settings, self.ctx.state_dir)  # (folders made by an older nasd get their modes)
        await self._stop_leftovers()
        logfile_path = self.settings.run_dir / "log" / "smbd.stdout"
        logfile = open(logfile_path, "ab")
        offset = logfile.tell()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                # SIGTERM to smbd as soon as nasd dies, whatever killed it (util-linux's setpriv sets it, then
                # runs smbd: no Python code between fork and exec)
                setpriv, "--pdeathsig", "TERM", "--", smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.settings.config_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                start_new_session=True,  # smbd signals its whole process group when it stops
            )
        except FileNotFoundError:
            self.failure = f"{setpriv} or {smbd} is not installed (apt-get install util-linux samba)"
            raise PermanentError(self.failure, reason="SambaNotInstalled") from None
        finally:
            logfile.close()
        serves = await self._until_listening()
        rc = self.proc.returncode
        if rc is not None:
            self.failure = (f"smbd exited at start with status {rc}: " if rc >= 0 else
                            f"smbd was killed at start (signal {-rc}): ") + (
                            f"{_why(logfile_path, offset, self.settings.port)} (see {logfile_path})")
            raise PermanentError(self.failure, reason="SmbdFailed")
        taken = _address_taken(logfile_path, offset)
        if taken or not serves:
            holder = port_holder(self.settings.port, besides=self.proc.pid)
            await self._stop_own()
            self.failure = (f"smbd could not listen on port {self.settings.port}: "
                            + (f"it is in use by {holder or 'another program'} (stop that, or set plugins.smb.port "
                               "to a free port)" if taken else "it did not listen within 20 s")
                            + f" (see {logfile_path})")
            raise PermanentError(self.failure, reason="SmbdFailed")
        self.failure = None
        self.started_at = time.monotonic()
        log.info("smbd started", extra={"pid": self.proc.pid, "port": self.settings.port})
        if self._task is None:
            self._task = self.ctx.spawn(self._watch(), name="smbd-supervisor")

    async def _until_listening(self, timeout: float = 20.0) -> bool:
        """Wait until smbd wrote its pid file and listens on its port (True), exited, or the timeout passed."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.proc.returncode is None and loop.time() < deadline:
            if smbd_pid(self.settings) == self.proc.pid and listening(self.proc.pid, self.settings.port):
                await asyncio.sleep(0.05)  # (it opens its sockets one after the other, in a moment)
                return True
            await asyncio.sleep(0.02)
        return False

    async def _watch(self) -> None:
        delay = 0.5
        while not self._stopping:
            assert self.proc is not None
            rc = await self.proc.wait()
            if self._stopping:
                return
            ran = time.monotonic() - self.started_at
            if ran >= self.STABLE_SECONDS:
                delay = 0.5
            self.last_exit = rc
            self.restarts += 1
            self.next_start = time.monotonic() + delay
            log.error("smbd exited with status %s after %.0f s; starting it again in %.1f s", rc, ran, delay)
            self.ctx.request_reconcile("smbd exited")  # (its shares say so until it runs again)
            while not self._stopping:
                await asyncio.sleep(max(0.0, self.next_start - time.monotonic()))
                try:
                    await self.start()
                    break
                except Exception as e:
                    delay = min(delay * 2, self.MAX_DELAY)
                    self.next_start = time.monotonic() + delay
                    log.error("smbd did not start: %s; trying again in %.1f s", e, delay)
                    self.ctx.request_reconcile("smbd did not start")
            delay = min(delay * 2, self.MAX_DELAY)
            self.next_start = None
            self.ctx.request_reconcile("smbd runs again")

    async def _stop_own(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        await self._stop_own()
        await stop_samba(self.settings.config_file)


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _sockets_of(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except OSError:
        pass
    return out


def listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port``."""
    wanted = _listening_inodes(port)
    return bool(wanted) and bool(wanted & _sockets_of(pid))


def port_holder(port: int, besides: int) -> str:
    """'<program> (pid N)' of a process other than ``besides`` listening on ``port``, or '' (best effort: a scan
    of /proc)."""
    wanted = _listening_inodes(port) - _sockets_of(besides)
    if not wanted:
        return ""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and wanted & _sockets_of(int(entry.name)):
            return f"{_program(int(entry.name)) or 'a process'} (pid {entry.name})"
    return "another network namespace or a process nasd cannot see"


def _address_taken(logfile: Path, offset: int) -> bool:
    """Whether smbd logged, since ``offset``, that an address it should listen on was taken (it goes on with
    the others, so a client of that address would not reach it)."""
    try:
        with open(logfile, "rb") as f:
            f.seek(offset)
            return b"Address already in use" in f.read(1 << 20)
    except OSError:
        return False


def _program(pid: int) -> str:
    try:
        return os.path.basename(Path(f"/proc/{pid}/exe").resolve().name)
    except OSError:
        return ""


def _why(logfile: Path, offset: int, port: int) -> str:
    """The lines of smbd's log since ``offset`` that say why it stopped, in short."""
    try:
        with open(logfile, "rb") as f:
            f.seek(offset)
            text = f.read(65536).decode(errors="replace")
    except OSError:
        return "its log could not be read"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("[")]
    if any("Address already in use" in ln for ln in lines):
        return f"port {port} is in use by another program (stop it, or set plugins.smb.port to a free port)"
    keys = ("error", "fail", "unable", "cannot", "can't", "denied", "not ")
    picked = [ln for ln in lines if any(k in ln.lower() for k in keys)] or lines[-3:]
    return "; ".join(picked[-3:])[:500] or "it printed nothing"
