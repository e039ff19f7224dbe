"""The datasets nasd's own `zfs create` made, or failed to make, while ZFS went away.

zfs-fuse sets a new dataset's properties after making it: when its daemon dies in between (or before they
reach the disk), the dataset is there without ``nasd.io:managed``. Such a dataset is taken for nasd's own when
its create succeeded, or failed and the observation right after it could not read ZFS (a create refused because
the name exists, or while ZFS was up, is never taken).
"""

from __future__ import annotations

from typing import Any

from nasd.plugin import Runner

from .plan import ZfsObservation, _managed


class CreateTracker:
    """What the runner's `zfs create` commands did, matched against each observation."""

    def __init__(self) -> None:
        #: made by this nasd; its property set may still be lost if zfs-fuse dies before it reaches the disk
        self.created: set[str] = set()
        #: failed since the last observation (not because the name exists)
        self.failed: set[str] = set()
        #: failed, and the observation right after could not read ZFS
        self.interrupted: set[str] = set()

    def watch(self, runner: Runner) -> None:
        zfs = runner.resolve("zfs")

        def listener(spawn: Any) -> None:
            if not spawn.mutating or spawn.argv[:2] != [zfs, "create"]:
                return
            if spawn.returncode == 0:  # (a create fails on a name that exists)
                self.created.add(spawn.argv[-1])
            elif "exists" not in spawn.stderr:  # (someone else's dataset by that name: never taken)
                self.failed.add(spawn.argv[-1])

        runner.listeners.append(listener)

    def unreadable(self) -> None:
        """ZFS could not be read (not running, or dying while it was read: "I/O error", "file descriptor
        closed"): the creates that failed meanwhile may have been interrupted."""
        self.interrupted |= self.failed
        self.failed.clear()

    def seen(self, obs: ZfsObservation) -> None:
        """Mark ``obs.interrupted``: nasd's creates that are there without nasd's marker."""
        self.failed.clear()
        unmanaged = {n for n, props in obs.datasets.items() if not _managed(props)}  # (inherited is not marked)
        # forgotten once seen marked as nasd's; one not listed is kept (right after ZFS is back, its pool may not be
        # imported yet)
        managed = set(obs.datasets) - unmanaged
        self.interrupted -= managed
        self.created -= managed
        obs.interrupted = (self.interrupted | self.created) & unmanaged
