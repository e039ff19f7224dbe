"""Real ZFS for tests: zfs-fuse in a private mount namespace, one pool per test on sparse files.

The test process moves itself into a new mount namespace (``unshare(CLONE_NEWNS)``),
makes every mount private, puts tmpfs over zfs-fuse's fixed socket/lock/cache folders
and starts its own zfs-fuse. Nothing it mounts is seen outside; at the end every pool
the tests made is destroyed and the daemon stopped, so nothing is left behind.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
ZFS_FUSE_DIRS = ("/run/zfs", "/run/lock/zfs", "/var/lib/zfs")


class ZFSUnavailable(RuntimeError):
    pass


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


_in_private_namespace = False


def _enter_private_mount_namespace() -> None:
    """Move this process into a new mount namespace with every mount private (once per process)."""
    global _in_private_namespace
    if _in_private_namespace:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise ZFSUnavailable(f"unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())} (run as root)")
    run("mount", "--make-rprivate", "/")
    _in_private_namespace = True


@dataclass
class ZFSFuse:
    """A private zfs-fuse daemon (or the kernel's ZFS when /dev/zfs exists)."""

    workdir: Path
    pid: int | None = None
    kernel: bool = False
    pools: set[str] = field(default_factory=set)

    def start(self) -> None:
        if os.geteuid() != 0:
            raise ZFSUnavailable("real ZFS tests need root")
        if Path("/dev/zfs").exists() and not shutil.which("zfs-fuse"):
            self.kernel = True
            return
        if not shutil.which("zfs-fuse"):
            raise ZFSUnavailable("zfs-fuse is not installed (make test installs it)")
        _enter_private_mount_namespace()
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            _, mountpoint, fstype, *_ = line.split()
            if fstype == "fuse.zfs" or fstype == "fuse":
                run("umount", "-l", mountpoint, check=False)
        for d in ZFS_FUSE_DIRS:
            Path(d).mkdir(parents=True, exist_ok=True)
            run("mount", "-t", "tmpfs", "tmpfs", d)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._launch()

    def _launch(self) -> None:
        pidfile = self.workdir / "zfs-fuse.pid"
        pidfile.unlink(missing_ok=True)  # a stale pidfile makes zfs-fuse exit silently
        run("zfs-fuse", "--pidfile", str(pidfile))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if pidfile.exists() and run("zpool", "list", check=False).returncode == 0:
                self.pid = int(pidfile.read_text().strip())
                return
            time.sleep(0.05)
        raise ZFSUnavailable("zfs-fuse did not become ready within 15 s")

    # -- faults: the daemon killed under whoever uses it, and started again -------------------------

    def kill(self) -> None:
        """SIGKILL the zfs-fuse daemon (as the OOM killer would) and wait until it is gone. Its mounts stay
        listed, dead (ENOTCONN); the pools stay in its cache file, so :meth:`restart` imports them again."""
        assert not self.kernel and self.pid, "only a private zfs-fuse can be killed"
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # A thread of zfs-fuse inside a request on its own FUSE mounts keeps the killed daemon from exiting (and
        # every zfs command waiting on it: seen here) until the kernel's FUSE connection is aborted, which is what
        # an admin does (/sys/fs/fuse/connections/N/abort). The mounts stay, dead (ENOTCONN).
        _abort_fuse_connections()
        deadline = time.monotonic() + 10
        while (_alive(self.pid) or Path(f"/proc/{self.pid}/task").exists() and len(list(
                Path(f"/proc/{self.pid}/task").iterdir())) > 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pid = None

    def running(self) -> bool:
        return self.kernel or (self.pid is not None and _alive(self.pid))

    def restart(self) -> None:
        """Start zfs-fuse again after :meth:`kill`, as an admin or systemd would: it imports the pools of its
        cache file and mounts nothing (the dead mounts are left for whoever manages the datasets)."""
        if not self.running():
            self._launch()

    def ensure_running(self, under: Path | None = None) -> None:
        """Leave the session's daemon sound whatever a fault test did: running, and no dead mount left below
        ``under`` (detached, so the pools can be destroyed at teardown)."""
        self.restart()
        for m in sorted(fuse_mounts_under(under) if under else [], key=len, reverse=True):
            try:
                os.stat(m)
            except OSError as e:
                if e.errno == errno.ENOTCONN:
                    run("umount", "-l", m, check=False)

    def destroy_pool(self, name: str) -> None:
        if run("zpool", "list", "-H", "-o", "name", name, check=False).returncode != 0:
            self.pools.discard(name)
            return
        datasets = run("zfs", "list", "-H", "-o", "name", "-r", "-t", "filesystem", name, check=False).stdout.split()
        for ds in sorted(datasets, key=len, reverse=True):
            run("zfs", "umount", ds, check=False)
        for _ in range(50):  # "pool is busy" races right after unmounts
            result = run("zpool", "destroy", name, check=False)
            if result.returncode == 0:
                break
            time.sleep(0.15)
        else:
            mounts = [ln for ln in Path("/proc/self/mounts").read_text().splitlines() if name in ln]
            raise RuntimeError(f"could not destroy test pool {name}: {result.stderr.strip()}; mounts: {mounts}")
        self.pools.discard(name)

    def all_pools(self) -> list[str]:
        out = run("zpool", "list", "-H", "-o", "name", check=False).stdout
        return [p for p in out.split() if p]

    def stop(self) -> None:
        for pool in self.all_pools() if not self.kernel else list(self.pools):
            self.destroy_pool(pool)
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not _alive(self.pid):
                    return
                time.sleep(0.05)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _abort_fuse_connections() -> None:
    """Abort the kernel's FUSE connection of every zfs-fuse mount of this mount namespace (fusectl, mounted on
    /sys/fs/fuse/connections if it is not)."""
    connections = Path("/sys/fs/fuse/connections")
    if connections.is_dir() and not any(connections.iterdir()):
        run("mount", "-t", "fusectl", "fusectl", str(connections), check=False)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1] if "-" in fields else ""
        if fstype in ("fuse", "fuse.zfs"):
            abort = connections / fields[2].split(":")[1] / "abort"
            try:
                abort.write_text("1")
            except OSError:
                pass


def _alive(pid: int) -> bool:
    """Running and not a zombie (zfs-fuse daemonizes: init reaps it a while after it exits)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def fuse_mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mountpoint = line.split()[1]
        if (mountpoint + "/").startswith(prefix):
            out.append(mountpoint)
    return out


def start_for_pool(root: Path, prefix: str) -> tuple[ZFSFuse, str]:
    """Start ZFS (a private zfs-fuse under ``root``, or the kernel's) for one new pool named
    ``<prefix><6 hex digits>``, which ``stop()`` destroys. Raises ZFSUnavailable."""
    zfs = ZFSFuse(root / "zfs-fuse")
    zfs.start()
    pool = prefix + secrets.token_hex(3)
    zfs.pools.add(pool)  # destroyed by stop() on kernel ZFS too
    return zfs, pool


def cleanup_tree(root: Path) -> None:
    """Remove ``root`` once nothing is mounted below it (never ``rm -r`` into a mounted file system)."""
    for m in sorted(fuse_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    if fuse_mounts_under(root):
        print(f"warning: mounts left under {root}, not removing it: {fuse_mounts_under(root)}", file=sys.stderr)
        return
    shutil.rmtree(root, ignore_errors=True)
