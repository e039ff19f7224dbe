"""What the file system under a share can store: one read per mounted dataset, remembered."""

from __future__ import annotations

import errno
import os
from pathlib import Path

_PROBE = "user.nasd-probe"


def has_xattrs(known: dict[str, bool], path: str) -> bool:
    """Whether the file system mounted at ``path`` stores extended attributes (zfs-fuse does not), remembered in
    ``known`` (mount point -> answer). A path not mounted (yet) says nothing about its dataset: True, asked again
    next time."""
    if path not in known:
        if not os.path.ismount(path):
            return True
        try:
            os.getxattr(path, _PROBE)
            known[path] = True
        except OSError as e:
            known[path] = e.errno == errno.ENODATA
    return known[path]


def _modules_dirs() -> list[Path]:
    """Where Samba's loadable modules may be: Debian's multiarch folder, then the usual others."""
    import sysconfig

    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [Path("/usr/lib") / arch / "samba"] if arch else []
    return dirs + [Path("/usr/lib64/samba"), Path("/usr/lib/samba"), Path("/usr/local/samba/lib")]


def missing_vfs_modules(modules: tuple[str, ...]) -> set[str]:
    """The modules of ``modules`` whose file (``<modules dir>/vfs/<name>.so``) is not installed. Empty when the
    modules folder is not found at all (an unknown layout: smbd itself will say), so it never refuses in doubt.
    A handful of stats, no program run."""
    for folder in _modules_dirs():
        vfs = folder / "vfs"
        if any((folder / sub).is_dir() for sub in ("vfs", "auth", "idmap")):  # (vfs itself may be what is missing)
            return {m for m in modules if not (vfs / f"{m}.so").exists()}
    return set()
