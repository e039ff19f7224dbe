"""What is mounted where, as the kernel says (``/proc/self/mountinfo``): so that nasd changes a dataset's
top folder only when that folder is the dataset's own mount, never a folder that merely sits at the path
(a mountpoint set to ``/etc`` with ``canmount: off``, a symlink planted where the mount failed)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field

log = logging.getLogger("nasd.zfs.mounts")

_ZFS_TYPES = {"zfs", "fuse.zfs", "fuse"}
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    source: str
    fstype: str
    dev: int


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> dict[str, Mount]:
    """mount point -> the mount on top there (the last one listed)."""
    out: dict[str, Mount] = {}
    for line in text.split("\n"):
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        major, _, minor = fields[2].partition(":")
        if not (major.isdigit() and minor.isdigit()) or len(fields) < sep + 3:
            continue
        out[_unescape(fields[4])] = Mount(source=_unescape(fields[sep + 2]), fstype=fields[sep + 1],
                                          dev=os.makedev(int(major), int(minor)))
    return out


def read_mounts() -> dict[str, Mount]:
    try:
        with open("/proc/self/mountinfo") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return {}


def dataset_mounted_at(mounts: dict[str, Mount], path: str, dataset: str) -> bool:
    """Whether the mount on top at ``path`` is the ZFS dataset ``dataset``."""
    m = mounts.get(path)
    return m is not None and m.fstype in _ZFS_TYPES and m.source == dataset


def open_dataset_root(path: str, dataset: str) -> int:
    """An fd of the folder at ``path``, checked to be ``dataset``'s own mount at this moment: no symlink
    followed (``O_NOFOLLOW``), a directory, and the device the kernel lists for that dataset's mount there.
    Raises OSError (ENOTDIR, ELOOP) or LookupError (not that dataset's mount)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        mount = read_mounts().get(path)
        if not stat.S_ISDIR(st.st_mode) or mount is None or not dataset_mounted_at({path: mount}, path, dataset) \
                or mount.dev != st.st_dev:
            raise LookupError(f"{path} is not the mount of {dataset}")
        return fd
    except BaseException:
        os.close(fd)
        raise


def dead_mount(path: str) -> bool:
    """Whether the mount at ``path`` lost its file system daemon (a FUSE mount whose zfs-fuse died):
    listed, but every access fails with ENOTCONN until it is unmounted and mounted again."""
    try:
        os.statvfs(path)  # (a stat may be answered from the kernel's cache; statfs always asks the daemon)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


@dataclass
class MountProbe:
    """:func:`dead_mount` for many mounts, off the event loop and time-limited: a statfs on a mount whose daemon
    hangs (rather than died) does not return, and would otherwise stop every pass. It runs in a daemon thread of
    its own (a thread stuck in the kernel never holds up nasd's exit), one probe at a time: while one has not
    returned, the next passes find no dead mount (and say which mount hangs)."""

    timeout: float = 2.0
    _inflight: threading.Thread | None = field(default=None, repr=False)
    _at: str = ""

    async def dead(self, paths: list[str]) -> set[str]:
        """The paths among ``paths`` whose mount lost its daemon."""
        if not paths:
            return set()
        if self._inflight is not None and self._inflight.is_alive():
            log.warning("statfs of %s has not returned: its file system daemon hangs; dead mounts are not looked "
                        "for until it does", self._at)
            return set()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        found: list[str] = []

        def probe() -> None:
            try:
                for path in paths:
                    self._at = path
                    if dead_mount(path):
                        found.append(path)
            finally:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        self._inflight = threading.Thread(target=probe, name="nasd-mount-probe", daemon=True)
        self._inflight.start()
        try:
            await asyncio.wait_for(done, self.timeout)
        except asyncio.TimeoutError:
            log.warning("statfs of %s did not return within %.1f s: its file system daemon hangs", self._at,
                        self.timeout)
        return set(list(found))
