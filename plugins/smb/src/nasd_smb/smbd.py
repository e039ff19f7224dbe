"""Samba's processes: checking a staged smb.conf, swapping it in, reloading, and (in supervised
mode) running smbd itself: started with the daemon, restarted if it dies, stopped at the end
together with the samba-dcerpcd helpers it spawned."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from nasd.context import Context
from nasd.errors import CommandError, PermanentError, TemporaryError
from nasd.state import atomic_write

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


async def check_config(ctx: Context, settings: SMBSettings, text: str) -> None:
    """Stage ``text`` beside the live file and let `testparm -s` judge it. Raises PermanentError."""
    staged = settings.config_file.with_name(f".{settings.config_file.name}.staged")
    atomic_write(staged, text.encode(), mode=0o644)
    try:
        result = await ctx.runner.run(["testparm", "-s", str(staged)], mutating=False, check=False,
                                      env=settings.env())
    finally:
        staged.unlink(missing_ok=True)
    # testparm exits 0 even on unknown parameters: its stderr says what it ignored
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    bad = [ln for ln in lines if "Unknown parameter" in ln or "Ignoring" in ln]
    if result.returncode != 0 or bad:
        detail = [ln for ln in lines if not ln.startswith(("Load smb config files", "Loaded services file"))]
        raise PermanentError("testparm rejected the new smb.conf (the running one is unchanged): "
                             + "; ".join(detail)[:800], reason="ConfigRejected")


def smbd_pid(settings: SMBSettings) -> int | None:
    try:
        pid = int((settings.run_dir / "pid" / "smbd.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


async def apply_config(ctx: Context, settings: SMBSettings, text: str) -> bool:
    """Check, swap in and reload; return whether anything changed. Unchanged text: no write, no reload."""
    try:
        previous: str | None = settings.config_file.read_text()
    except FileNotFoundError:
        previous = None
    if previous == text:
        return False
    await check_config(ctx, settings, text)
    atomic_write(settings.config_file, text.encode(), mode=0o644)
    if settings.mode == "system" or smbd_pid(settings) is not None:
        try:
            await ctx.runner.run(["smbcontrol", "-s", str(settings.config_file), "smbd", "reload-config"],
                                 mutating=True, env=settings.env())
        except CommandError as e:
            if settings.mode == "system" and smbd_pid(settings) is None:
                log.info("smbd is not running: it reads the new smb.conf when it starts")
                return True
            # put the old file back, so that the next pass sees the difference and tries again
            if previous is not None:
                atomic_write(settings.config_file, previous.encode(), mode=0o644)
            raise TemporaryError(f"smbd did not take the new smb.conf (kept the old one): {e.stderr.strip()}",
                                 reason="ReloadFailed") from None
    return True


def _helpers_of(config: Path) -> list[int]:
    """samba-dcerpcd and rpcd_* processes started for this config (they outlive smbd)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(cmdline[0].decode(errors="replace")) if cmdline and cmdline[0] else ""
        if (name.startswith("samba-dcerpcd") or name.startswith("rpcd_")) and any(
            arg.decode(errors="replace") in (f"--configfile={config}", str(config)) for arg in cmdline
        ):
            pids.append(int(entry.name))
    return pids


class Supervisor:
    """Runs smbd in the foreground as a child of nasd and keeps it running."""

    def __init__(self, ctx: Context, settings: SMBSettings):
        self.ctx = ctx
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._task: asyncio.Task | None = None

    @property
    def supervising(self) -> bool:
        """smbd started once: from then on the watcher restarts it."""
        return self._task is not None

    async def start(self) -> None:
        smbd = self.ctx.runner.resolve("smbd")
        prepare_dirs(self.settings, self.ctx.state_dir)  # (folders made by an older nasd get their modes)
        logfile = open(self.settings.run_dir / "log" / "smbd.stdout", "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.settings.config_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                env={**os.environ, **self.settings.env()},
                start_new_session=True,  # smbd signals its whole process group when it stops
            )
        except FileNotFoundError:
            raise PermanentError("smbd is not installed (apt-get install samba)", reason="SambaNotInstalled") from None
        finally:
            logfile.close()
        for _ in range(100):  # ready when it wrote its pid file
            if smbd_pid(self.settings) == self.proc.pid or self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if self.proc.returncode is not None:
            raise PermanentError(f"smbd exited at start with status {self.proc.returncode}; see "
                                 f"{self.settings.run_dir / 'log'}", reason="SmbdFailed")
        log.info("smbd started", extra={"pid": self.proc.pid, "port": self.settings.port})
        if self._task is None:
            self._task = self.ctx.spawn(self._watch(), name="smbd-supervisor")

    async def _watch(self) -> None:
        delay = 0.5
        while not self._stopping:
            assert self.proc is not None
            rc = await self.proc.wait()
            if self._stopping:
                return
            log.error("smbd exited with status %s; restarting", rc)
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self.start()
                delay = 0.5
            except Exception as e:
                log.error("smbd restart failed: %s", e)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for pid in _helpers_of(self.settings.config_file):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
