"""nasd-zfs: ZFS pools and datasets through the real zpool/zfs command line.

Modules: ``dialect`` (what this zfs binary supports), ``parse`` (its output),
``plan`` (pure diffs into commands), ``control`` (the reads and on-demand commands),
``plugin`` (the hook implementations, nothing else).
"""

__version__ = "0.1.0"
