"""nasd-zfs: ZFS pools and datasets through the real zpool/zfs command line.

Modules: ``dialect`` (what this zfs binary supports), ``parse`` (its output),
``plan`` (pure diffs into commands), ``control`` (the reads and on-demand commands),
``plugin`` (the hook implementations, nothing else), ``settings`` (its configuration), ``creates``
(the datasets a `zfs create` made when ZFS went away).
"""

__version__ = "0.1.0"
