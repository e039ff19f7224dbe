"""smbd's faults, on the real `nasd serve`, smbd and smbclient: nasd killed (SIGKILL) with smbd running, an smbd
an earlier nasd left behind, smbd killed again and again, smbd unable to start (its port taken), a VFS module
missing. Each: what the shares say, that what was written stays, and that it heals by itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from nasd_testing.processes import main_smbds, samba_processes
from nasd_testing.serve import Server, poll, serving

pytestmark = pytest.mark.zfs
PASSWORD = "s3cret-Alice"


def down(server: Server, share: str, reasons: tuple[str, ...]) -> dict | None:
    """The share's Ready condition if it is False with one of ``reasons`` (one read)."""
    ready = condition(server, "nasshare", share)
    return ready if ready.get("reason") in reasons and ready.get("status") == "False" else None


def condition(server: Server, kind: str, name: str) -> dict:
    result = server.cli("get", kind, name, "-o", "yaml")
    if result.returncode != 0:
        return {}
    conditions = yaml.safe_load(result.stdout).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def manifests(pool_env, smb_env, folder: Path, shares: int = 2) -> None:
    docs = [pool_env.pool_manifest(), *smb_env.local_users(alice=(2001, PASSWORD))]
    for i in range(shares):
        docs.append(pool_env.dataset_manifest(f"d{i}", owner={"uid": 2001, "gid": 2001, "mode": "0770"}))
        docs.append({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": f"s{i}"},
                     "spec": {"protocol": "smb", "dataset": f"d{i}", "smb": {"validUsers": ["alice"]}}})
    pool_env.write_manifests(folder, *docs)


def wait_served(server: Server, smb_env, shares: int = 2, timeout: float = 60) -> None:
    for i in range(shares):
        poll(lambda: server.ready("nasshare", f"s{i}"), timeout=timeout, what=f"share s{i} Ready")
        listing = poll(lambda: (r := smb_env.smbclient(f"s{i}", "alice", PASSWORD, "ls")).returncode == 0 and r,
                       timeout=15, what=f"smbclient ls on s{i}")
        assert "blocks" in listing.stdout


@pytest.fixture
def smb_serve(pool_env, smb_env, tmp_path):
    with serving(pool_env, tmp_path, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                              "smb": smb_env.settings(), "timemachine": {"mdns": "off"}}) as start:
        yield start


def test_smbd_dies_with_a_killed_nasd_and_the_next_nasd_serves_every_share_with_one_smbd(
        pool_env, smb_env, smb_serve, tmp_path):
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder)
    marker = str(smb_env.root)
    server = smb_serve(folder)
    wait_served(server, smb_env)
    (tmp_path / "kept.txt").write_text("written before the crash\n")
    put = smb_env.smbclient("s0", "alice", PASSWORD, "put kept.txt", cwd=tmp_path)
    assert put.returncode == 0, put.stdout
    assert samba_processes(marker)

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    poll(lambda: not samba_processes(marker), timeout=15, what="no Samba process after nasd's SIGKILL")

    again = smb_serve(folder)
    wait_served(again, smb_env)
    [smbd] = main_smbds(marker)
    assert samba_processes(marker)[smbd][1] == again.proc.pid  # the one smbd is the new nasd's child
    got = smb_env.smbclient("s0", "alice", PASSWORD, "get kept.txt back.txt", cwd=tmp_path)
    assert got.returncode == 0 and (tmp_path / "back.txt").read_text() == "written before the crash\n"

    assert again.stop() == 0, again.output()
    assert not samba_processes(marker), "Samba processes left after SIGTERM"
    assert "Traceback" not in again.output()


def test_an_smbd_an_earlier_nasd_left_running_is_stopped_and_replaced_by_a_supervised_one(
        pool_env, smb_env, smb_serve, tmp_path):
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder, shares=1)
    marker = str(smb_env.root)
    server = smb_serve(folder)
    wait_served(server, smb_env, shares=1)
    conf = next(arg for pid in main_smbds(marker)
                for arg in (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")) if arg.endswith(b"smb.conf"))
    assert server.stop() == 0
    # what an older nasd (or one whose smbd missed the signal) leaves: an smbd that is nobody's child
    orphan = subprocess.Popen(["smbd", "--foreground", "--no-process-group", "-s", conf.decode()],
                              env=smb_env.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        poll(lambda: orphan.pid in main_smbds(marker) and (smb_env.root / "state" / "smb" / "pid" / "smbd.pid").exists()
             or orphan.poll() is not None, timeout=15, what="the orphaned smbd to run")
        assert orphan.poll() is None

        again = smb_serve(folder)
        wait_served(again, smb_env, shares=1)
        assert orphan.wait(15) is not None  # stopped by the new nasd
        [smbd] = main_smbds(marker)
        assert samba_processes(marker)[smbd][1] == again.proc.pid
        assert "that nasd does not supervise (an earlier nasd left them" in again.output()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
    assert again.stop() == 0
    assert not samba_processes(marker)


def test_smbd_killed_again_and_again_is_restarted_with_growing_delays_and_its_shares_say_so(
        pool_env, smb_env, smb_serve, tmp_path):
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder, shares=1)
    marker = str(smb_env.root)
    server = smb_serve(folder)
    wait_served(server, smb_env, shares=1)
    starts: list[float] = []
    for i in range(5):  # killed as soon as it serves again: a crash loop (restarts after 0.5, 1, 2, 4, 8 s)
        poll(lambda: server.ready("nasshare", "s0") and len(main_smbds(marker)) == 1, timeout=60,
             what="the share served again")
        [smbd] = main_smbds(marker)
        starts.append(time.monotonic())
        os.kill(smbd, signal.SIGKILL)
        poll(lambda: smbd not in samba_processes(marker), timeout=10, what="smbd gone")
        if i >= 2:  # (the first restarts may come before a pass could say so; from 2 s on, a pass does)
            said = poll(lambda: down(server, "s0", ("SmbdNotRunning",)), timeout=10, what="SmbdNotRunning")
            assert f"smbd exited (killed by signal 9; restarted {i + 1} times so far)" in said["message"], said
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[-1] > gaps[0] + 1.0, f"no backoff between restarts: {gaps}"  # 0.5 s, 1 s, 2 s, 4 s, ...
    wait_served(server, smb_env, shares=1)  # healed by itself
    [smbd] = main_smbds(marker)
    assert samba_processes(marker)[smbd][1] == server.proc.pid
    assert server.output().count("smbd exited with status") >= 4
    assert "Traceback" not in server.output()


def test_smbd_that_cannot_take_its_port_says_so_and_starts_once_the_port_is_free(
        pool_env, smb_env, smb_serve, tmp_path):
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder, shares=1)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", smb_env.port))
    squatter.listen()
    try:
        server = smb_serve(folder)
        ready = poll(lambda: down(server, "s0", ("SmbdFailed",)), timeout=60, what="SmbdFailed on the share")
        assert f"could not listen on port {smb_env.port}: it is in use by python" in ready["message"], ready
    finally:
        squatter.close()
    wait_served(server, smb_env, shares=1, timeout=120)  # the next retry of the backoff starts it
    assert len(main_smbds(str(smb_env.root))) == 1
    assert "Traceback" not in server.output()


def test_a_share_needing_a_vfs_module_samba_lacks_is_refused_naming_the_package_and_served_once_installed(
        pool_env, smb_env, smb_serve, tmp_path):
    from nasd_smb.filesystem import _modules_dirs

    vfs = next(d / "vfs" for d in _modules_dirs() if (d / "vfs").is_dir())
    empty = tmp_path / "no-vfs-modules"
    empty.mkdir()
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder, shares=1)
    # the test process has its own mount namespace (nasd_testing.zfs), which nasd serve inherits: hiding the
    # modules here hides them from nasd and its smbd only, as if samba-vfs-modules were not installed
    subprocess.run(["mount", "--bind", str(empty), str(vfs)], check=True)
    try:
        server = smb_serve(folder)
        ready = poll(lambda: down(server, "s0", ("VfsModuleMissing",)), timeout=60, what="VfsModuleMissing")
        assert "samba-vfs-modules" in ready["message"] and "streams_xattr" in ready["message"], ready
    finally:
        subprocess.run(["umount", str(vfs)], check=True)
    wait_served(server, smb_env, shares=1, timeout=90)  # the periodic pass sees the modules again
    assert "Traceback" not in server.output()
