"""Samba's processes as a test sees them, read from /proc: which run, and whose children they are."""

from __future__ import annotations

import os
from pathlib import Path


def samba_processes(marker: str) -> dict[int, tuple[str, int]]:
    """pid -> (program, parent pid) of every smbd, samba-dcerpcd and rpcd_* whose command line names ``marker``
    (the test's own folder: its smb.conf is below it), read from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        name = os.path.basename(cmdline[0].decode(errors="replace"))
        if stat[0] != "Z" and (name == "smbd" or name.startswith(("samba-dcerpcd", "rpcd_"))) \
                and any(marker in arg.decode(errors="replace") for arg in cmdline):
            out[int(entry.name)] = (name, int(stat[1]))
    return out


def main_smbds(marker: str) -> list[int]:
    """The listening smbd processes (not the per-client children, whose parent is an smbd)."""
    procs = samba_processes(marker)
    return [pid for pid, (name, ppid) in procs.items() if name == "smbd" and procs.get(ppid, ("",))[0] != "smbd"]
