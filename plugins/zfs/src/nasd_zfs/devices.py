"""Whether a device or a file named as a vdev already holds data, so that a pool is never created over it
unless the manifest says so (``spec.overwriteDevices``)."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from typing import Any

#: how much of a file's data regions is read looking for a byte that is not zero (a sparse file nasd made
#: has none at all; a file with data shows it in its first blocks)
SCAN_LIMIT = 64 << 20


def file_holds_data(path: str) -> bool:
    """Any non-zero byte in the regular file ``path`` (holes skipped with SEEK_DATA; at most SCAN_LIMIT read:
    data beyond that counts as data)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        offset, read = 0, 0
        while offset < size:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only holes from here on
                return False
            end = os.lseek(fd, offset, os.SEEK_HOLE)
            while offset < end:
                if read >= SCAN_LIMIT:
                    return True
                chunk = os.pread(fd, min(1 << 20, end - offset), offset)
                if not chunk:
                    return False
                if chunk.count(0) != len(chunk):
                    return True
                offset += len(chunk)
                read += len(chunk)
        return False
    finally:
        os.close(fd)


async def holds_data(ctx: Any, path: str) -> str | None:
    """What data ``path`` holds (None: none): a file's non-zero content, or a block device's signature as
    blkid finds it (a file system, a partition table, a ZFS label)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        path = os.path.realpath(path)
        st = os.stat(path)
    if stat.S_ISREG(st.st_mode):  # (in a thread: it may read up to SCAN_LIMIT)
        return "data (bytes that are not zero)" if await asyncio.to_thread(file_holds_data, path) else None
    if stat.S_ISBLK(st.st_mode):
        result = await ctx.runner.run(["blkid", "-p", "-o", "export", path], mutating=False, check=False)
        fields = dict(ln.split("=", 1) for ln in result.stdout.split("\n") if "=" in ln)
        kind = fields.get("TYPE") or fields.get("PTTYPE")
        if kind:
            return f"a {kind} signature"
        if result.returncode == 2:  # blkid found nothing at all
            return None
        return f"signatures blkid cannot tell apart (exit status {result.returncode})"  # (8: ambivalent)
    return "not a file or a block device"


class DataChecks:
    """:func:`holds_data`, remembered per device while it is unchanged: a file by its inode, size, mtime and ctime;
    a block device (whose node does not change when it is written) for at most BLOCK_RECHECK_SECONDS."""

    BLOCK_RECHECK_SECONDS = 60.0

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int | float, ...], str | None]] = {}

    async def holds_data(self, ctx: Any, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            self._known.pop(path, None)
            return await holds_data(ctx, path)
        if stat.S_ISBLK(st.st_mode):
            key: tuple[int | float, ...] = (st.st_rdev, time.monotonic() // self.BLOCK_RECHECK_SECONDS)
        else:
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == key:
            return known[1]
        found = await holds_data(ctx, path)
        if len(self._known) > 4096:
            self._known.clear()
        self._known[path] = (key, found)
        return found
