"""Faults: exportfs, testparm or smbcontrol missing or failing, on a real ``nasd serve`` with the real zfs-fuse,
smbd, smbclient and exportfs.

Each program is reached through nasd's configuration (``programs: {name: <test folder>/bin/name}``), so a fault
is a file operation: *missing* removes the link to the real program (it is "uninstalled"; putting the link back
installs it again), *failing* is a small script in front of the real program that exits non-zero with the kind
of message the real program gives while a flag file exists. Every test shows what the user sees (the share's
Ready condition names the program and says what to do; a log line; no traceback), proves that what was in
effect stays in effect (smbd keeps serving the running smb.conf, checked with smbclient; exportfs's table keeps
its exports), and that it heals by itself within the backoff once the program is back, without a restart.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from nasd_testing.serve import Server, poll, serving

BACKOFF = 3.0  # maxBackoffSeconds of these servers: a fault heals within it after the program is back
D = {"apiVersion": "nasd.io/v1alpha1"}


def real(program: str) -> str:
    found = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        pytest.skip(f"{program} is not installed")
    return found


@dataclass
class Program:
    """``bin/<name>``, the path nasd's configuration gives for a program: the real one, absent, or failing."""

    name: str
    bin: Path

    def __post_init__(self) -> None:
        self.real = real(self.name)
        self.bin.mkdir(exist_ok=True)
        self.flag = self.bin / f"{self.name}.broken"
        self.calls = self.bin / f"{self.name}.calls"

    @property
    def path(self) -> Path:
        return self.bin / self.name

    def install(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.symlink_to(self.real)

    def uninstall(self) -> None:
        self.path.unlink()

    def put_failing_wrapper(self, message: str, status: int) -> None:
        """The real program, except that while the flag file exists it prints ``message`` and exits ``status``
        (and counts its calls, for the backoff)."""
        self.path.unlink(missing_ok=True)
        self.path.write_text(
            "#!/bin/sh\n"
            f"if [ -e '{self.flag}' ]; then\n"
            f"  echo x >> '{self.calls}'\n"
            f"  echo \"{message}\" >&2\n"
            f"  exit {status}\n"
            "fi\n"
            f"exec '{self.real}' \"$@\"\n")
        os.chmod(self.path, 0o755)

    def break_(self) -> None:
        self.flag.touch()

    def repair(self) -> None:
        self.flag.unlink()

    def failed_calls(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


def smb_share(name: str, dataset: str) -> dict[str, Any]:
    return D | {"kind": "NASShare", "metadata": {"name": name},
                "spec": {"protocol": "smb", "dataset": dataset, "smb": {"guestOk": True}}}


def nfs_share(name: str, dataset: str, fsid: int) -> dict[str, Any]:
    return D | {"kind": "NASShare", "metadata": {"name": name},
                "spec": {"protocol": "nfs", "dataset": dataset,
                         "nfs": {"fsid": fsid, "clients": [{"hosts": ["10.0.0.0/8"]}]}}}


def get(server: Server, kind: str, name: str) -> dict[str, Any]:
    result = server.cli("get", kind, name, "-o", "yaml")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def ready(server: Server, kind: str, name: str) -> dict[str, Any]:
    """The Ready condition ({} while the object is not known yet)."""
    result = server.cli("get", kind, name, "-o", "yaml")
    if result.returncode != 0:
        return {}
    conditions = (yaml.safe_load(result.stdout).get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def wait_not_ready(server: Server, name: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = ready(server, "NASShare", name)
        return c if c.get("status") == "False" and c.get("reason") == reason else None
    try:
        return poll(check, timeout=20, interval=0.3, what=f"NASShare {name} Ready=False {reason}")
    except AssertionError:
        raise AssertionError(f"{ready(server, 'NASShare', name)}\n{server.output()[-3000:]}") from None


def heal(server: Server, name: str, started: float) -> float:
    """Seconds from ``started`` (the program back) until the share is Ready, with the same nasd still running."""
    pid = server.proc.pid
    poll(lambda: server.ready("NASShare", name), timeout=BACKOFF + 15, interval=0.2, what=f"NASShare {name} Ready")
    took = time.monotonic() - started
    assert server.proc.poll() is None and server.proc.pid == pid  # healed in the same process: no restart
    return took


def no_traceback(server: Server) -> None:
    assert "Traceback" not in server.output(), server.output()[-3000:]


def mountpoint(server: Server, dataset: str) -> str:
    return get(server, "ZDataset", dataset)["status"]["mountpoint"]


# -- SMB: testparm and smbcontrol ------------------------------------------------------------------------

SMB_FAULTS = {
    # program: {fault: (the reason the new share shows, what its message must say, the wrapper's message)}
    "testparm": {
        "missing": ("TestparmMissing", "apt-get install samba-common-bin", None),
        "failing": ("TestparmFailed", "libsamba-util.so.0: cannot open shared object file",
                    "testparm: error while loading shared libraries: libsamba-util.so.0: cannot open shared object "
                    "file: No such file or directory"),
    },
    "smbcontrol": {
        "missing": ("SmbcontrolMissing", "apt-get install samba-common-bin", None),
        "failing": ("SmbcontrolFailed", "messaging_init failed",
                    "smbcontrol: messaging_init failed: NT_STATUS_ACCESS_DENIED"),
    },
}
FAILING_STATUS = {"testparm": 127, "smbcontrol": 1, "exportfs": 1}  # (a loader error exits 127)


def retried(server: Server, reason: str, program: Program, fault: str) -> None:
    """Wait for a retry that met the fault again (the log says so each time): the backoff's first step."""
    first = server.output().count(f'"message": "{reason}: ')
    poll(lambda: server.output().count(f'"message": "{reason}: ') > first, timeout=BACKOFF + 10, interval=0.2,
         what=f"a retry meeting {program.name} {fault}")


def fault_phase(server: Server, program: Program, fault: str, reason: str, advice: str,
                change: Any, check_kept: Any, check_applied: Any, new: str) -> tuple[str, float]:
    """Put the fault in place, make a change that needs the program (a new share ``new``), see what the user sees,
    check that what is in effect stays, put the program back and time the healing. Returns (message, seconds)."""
    calls = program.failed_calls()
    if fault == "missing":
        program.uninstall()
    else:
        program.break_()
    change()
    shown = wait_not_ready(server, new, reason)
    assert program.name in shown["message"] and advice in shown["message"], shown
    assert f'"message": "{reason}: ' in server.output()  # the log says so too
    retried(server, reason, program, fault)
    check_kept()
    if fault == "failing":  # retried with backoff, not in a loop
        assert 2 <= program.failed_calls() - calls <= 8, program.failed_calls() - calls
    if fault == "missing":
        program.install()
    else:
        program.repair()
    took = heal(server, new, time.monotonic())
    assert took < BACKOFF + 3, took
    check_applied()
    no_traceback(server)
    print(f"{program.name} {fault}: {reason}: {shown['message']!r}; healed {took:.1f} s after the program was back")
    return shown["message"], took


@pytest.mark.parametrize("program", list(SMB_FAULTS))
def test_a_missing_or_failing_samba_tool_keeps_smbd_serving_the_running_config_says_what_to_do_and_heals(
        pool_env, smb_env, tmp_path, program):
    bin_dir = tmp_path / "bin"
    tools = {name: Program(name, bin_dir) for name in ("testparm", "smbcontrol")}
    for t in tools.values():
        t.install()
    tool = tools[program]
    folder = tmp_path / "manifests"
    base = [pool_env.pool_manifest(), *[pool_env.dataset_manifest(d) for d in ("media", "more", "most")]]
    shares = [smb_share("old", "media")]
    pool_env.write_manifests(folder, *base, *shares)
    plugins = {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()}
    with serving(pool_env, tmp_path, plugins=plugins, maxBackoffSeconds=BACKOFF,
                 programs={name: str(t.path) for name, t in tools.items()}) as start:
        server = start(folder)
        poll(lambda: server.ready("NASShare", "old"), timeout=30, what="NASShare old Ready")
        for dataset in ("media", "more", "most"):
            os.chmod(mountpoint(server, dataset), 0o755)
            (Path(mountpoint(server, dataset)) / "file.txt").write_text(f"in {dataset}\n")
        from nasd_smb.settings import load_settings
        conf = load_settings(smb_env.settings(), pool_env.state_dir).config_file
        smbd = smbd_pids(conf)
        assert len(smbd) == 1

        for fault, new, dataset in (("missing", "new", "more"), ("failing", "newer", "most")):
            reason, advice, message = SMB_FAULTS[program][fault]
            if fault == "failing":
                tool.put_failing_wrapper(message, FAILING_STATUS[program])
            running = conf.read_text()
            served = [s["metadata"]["name"] for s in shares]

            def change() -> None:
                pool_env.write_manifests(folder, *base, *shares, smb_share(new, dataset))

            def kept() -> None:  # smbd serves the running smb.conf: the shares it had, not the new one
                assert conf.read_text() == running
                for name in served:
                    assert ready(server, "NASShare", name)["status"] == "True"
                    got = smb_env.smbclient(name, None, None, "get file.txt -")
                    assert got.returncode == 0 and "in " in got.stdout, got.stdout + got.stderr
                refused = smb_env.smbclient(new, None, None, "ls")
                assert "NT_STATUS_BAD_NETWORK_NAME" in refused.stdout + refused.stderr, refused.stdout

            def applied() -> None:  # reloaded, not restarted: the same smbd serves the old shares and the new
                for name in [*served, new]:
                    got = smb_env.smbclient(name, None, None, "get file.txt -")
                    assert got.returncode == 0 and "in " in got.stdout, got.stdout + got.stderr
                assert smbd_pids(conf) == smbd and f"[{new}]" in conf.read_text()

            message, _ = fault_phase(server, tool, fault, reason, advice, change, kept, applied, new)
            assert "keeps serving" in message
            shares.append(smb_share(new, dataset))


def smbd_pids(conf: Path) -> set[int]:
    """The main smbd processes serving ``conf`` (not their children)."""
    from nasd_smb.smbd import samba_processes
    return {pid for pid, name in samba_processes(conf) if name == "smbd" and _parent_is_not_smbd(pid)}


def _parent_is_not_smbd(pid: int) -> bool:
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return Path(f"/proc/{ppid}/comm").read_text().strip() != "smbd"
    except (OSError, ValueError, IndexError):
        return False


# -- NFS: exportfs -----------------------------------------------------------------------------------------

NFS_FAULTS = {
    "missing": ("ExportfsMissing", "apt-get install nfs-kernel-server", None),
    "failing": ("ExportfsFailed", "could not open /var/lib/nfs/.etab.lock",
                "exportfs: could not open /var/lib/nfs/.etab.lock for locking: errno 13 (Permission denied)"),
}


def test_a_missing_or_failing_exportfs_keeps_the_exports_in_effect_says_what_to_do_and_heals(
        pool_env, nfs_exports, tmp_path):
    tool = Program("exportfs", tmp_path / "bin")
    tool.install()
    folder = tmp_path / "manifests"
    base = [pool_env.pool_manifest(), *[pool_env.dataset_manifest(d) for d in ("media", "more", "most")]]
    shares = [nfs_share("old", "media", 11)]
    pool_env.write_manifests(folder, *base, *shares)
    plugins = {"zfs": {"mountRoot": str(pool_env.mount_root)}, "nfs": nfs_exports.settings()}
    with serving(pool_env, tmp_path, plugins=plugins, maxBackoffSeconds=BACKOFF,
                 programs={"exportfs": str(tool.path)}) as start:
        server = start(folder)
        poll(lambda: server.ready("NASShare", "old"), timeout=30, what="NASShare old Ready")
        paths = {d: mountpoint(server, d) for d in ("media", "more", "most")}
        assert set(nfs_exports.exported()) == {paths["media"]}

        for fault, new, dataset, fsid in (("missing", "new", "more", 12), ("failing", "newer", "most", 13)):
            reason, advice, message = NFS_FAULTS[fault]
            if fault == "failing":
                tool.put_failing_wrapper(message, FAILING_STATUS["exportfs"])
            in_effect = nfs_exports.etab()
            exports_file = nfs_exports.own.read_text()
            served = [s["metadata"]["name"] for s in shares]

            def change() -> None:
                pool_env.write_manifests(folder, *base, *shares, nfs_share(new, dataset, fsid))

            def kept() -> None:  # exportfs's table keeps its exports, nasd's file is not changed behind them
                assert nfs_exports.etab() == in_effect
                assert nfs_exports.own.read_text() == exports_file
                for name in served:
                    assert ready(server, "NASShare", name)["status"] == "True"

            def applied() -> None:
                assert set(in_effect) <= set(nfs_exports.etab())  # (the old exports, with the same options)
                assert paths[dataset] in nfs_exports.exported()

            message, _ = fault_phase(server, tool, fault, reason, advice, change, kept, applied, new)
            assert "exports in effect are unchanged" in message
            shares.append(nfs_share(new, dataset, fsid))
        assert set(nfs_exports.exported()) == set(paths.values())
