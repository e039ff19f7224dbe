"""nasd as a service under a real systemd (PID 1) with OpenZFS, kernel nfsd and Samba: `make install` from the
checkout, a start that returns only once the first pass has mounted the dataset, the watchdog restarting a
wedged daemon, `systemctl stop` leaving no Samba process behind, SIGKILL of the main process followed by a clean
restart, and `make uninstall` (scripts/install.sh, which the make targets run). The tests run in order and share one installation and one pool.

Runs only when systemd is PID 1: `make test-vm-systemd` (scripts/vm/run.sh with NASD_VM_SYSTEMD=1)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from nasd_testing import serve

pytestmark = pytest.mark.skipif(Path("/proc/1/comm").read_text().strip() != "systemd",
                                reason="needs systemd as PID 1: make test-vm-systemd")

SRC = Path(__file__).resolve().parents[2]
POOL = "svc"
VDEV = Path("/var/tmp/nasd-svc/svc-0.img")
MANIFESTS = Path("/etc/nasd/manifests.d")
SAMBA = ("smbd", "samba-dcerpcd", "rpcd_classic", "rpcd_winreg", "rpcd_epmapper", "rpcd_fsrvp", "rpcd_lsad",
         "rpcd_mdssvc", "rpcd_rpcecho", "rpcd_spoolss")
PASSWORD = "s3rvice-Pass"
#: the test's WatchdogSec (the unit ships 30s; a drop-in shortens it so the run stays short)
WATCHDOG = 10


def sh(*argv: str, check: bool = True, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **env} if env else None)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def prop(name: str) -> str:
    return sh("systemctl", "show", "-P", name, "nasd.service").stdout.strip()


def journal() -> str:
    return sh("journalctl", "-u", "nasd.service", "--no-pager", "-o", "short-monotonic", check=False).stdout[-6000:]


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """:func:`nasd_testing.serve.poll`, with the unit's journal in the failure."""
    try:
        return serve.poll(check, timeout=timeout, interval=0.5, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{journal()}") from None


def ready(kind: str, name: str) -> bool:
    result = sh("nasd", "get", kind, name, "-o", "yaml", check=False)
    if result.returncode != 0:
        return False
    conditions = {c["type"]: c for c in yaml.safe_load(result.stdout).get("status", {}).get("conditions", [])}
    return conditions.get("Ready", {}).get("status") == "True"


def samba_processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, name) of every Samba process on the machine."""
    out = sh("ps", "-e", "-o", "pid=,ppid=,comm=").stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    return [(int(p), int(pp), c) for p, pp, c in rows if c in SAMBA or c.startswith("rpcd_")]


def in_unit() -> set[int]:
    cgroup = Path("/sys/fs/cgroup") / prop("ControlGroup").lstrip("/") / "cgroup.procs"
    return {int(p) for p in cgroup.read_text().split()} if cgroup.exists() else set()


def smb_put(name: str) -> None:
    local = Path("/var/tmp/nasd-svc") / name
    local.write_text(name)
    sh("smbclient", "//127.0.0.1/media", "-U", f"demo%{PASSWORD}", "-c", f"put {local} {name}", timeout=60)


def mounted(path: str) -> bool:
    """Mounted in PID 1's mount namespace: what the host, rpc.mountd and an admin see."""
    return any(line.split()[1] == path for line in Path("/proc/1/mounts").read_text().splitlines())


def note(line: str) -> None:
    """A timing for the report, in the VM's out/ folder (copied to the host)."""
    with open(Path(os.environ.get("NASD_VM_OUT", "/tmp")) / "systemd-service.txt", "a") as f:
        f.write(line + "\n")


def test_make_install_installs_enables_and_starts_the_service():
    assert sh("systemctl", "is-enabled", "smbd.service", check=False).stdout.strip() == "enabled"
    # what `make install` runs (the image has no make; the host's tests run `make install` itself), offline
    t0 = time.monotonic()
    result = sh(str(SRC / "scripts/install.sh"), "install", PIP_NO_INDEX="1", PIP_FIND_LINKS=os.environ["NASD_VM_DEPS"])
    note(f"install: {time.monotonic() - t0:.1f} s\n{result.stdout}{result.stderr}")
    assert "disabling Debian's smbd.service" in result.stdout, result.stdout
    assert sh("systemctl", "is-enabled", "nasd.service").stdout.strip() == "enabled"
    assert prop("ActiveState") == "active" and prop("Type") == "notify"
    assert sh("systemctl", "is-enabled", "smbd.service", check=False).stdout.strip() == "disabled"
    assert os.readlink("/usr/local/sbin/nasd") == "/opt/nasd/bin/nasd"
    config = yaml.safe_load(Path("/etc/nasd/config.yaml").read_text())
    assert config["stateDir"] == "/var/lib/nasd" and config["manifests"] == [str(MANIFESTS)]
    assert Path("/run/nasd/nasd.sock").is_socket()
    # no mount namespace of its own: what it mounts, the host sees
    assert os.readlink(f"/proc/{prop('MainPID')}/ns/mnt") == os.readlink("/proc/1/ns/mnt")


def test_why_the_unit_has_no_mount_namespace_a_mount_made_inside_one_is_not_seen_by_the_host():
    """ProtectSystem= (like every option that gives a unit its own mount namespace) would keep what nasd mounts
    from the host, smbd's clients' view through the host and rpc.mountd: so the unit does without them."""
    probe = Path("/var/tmp/nasd-svc/probe")
    probe.mkdir(parents=True, exist_ok=True)
    unit = Path("/run/systemd/system/nasd-probe.service")
    try:
        for extra in ("", "ProtectSystem=full\n"):
            unit.write_text(f"[Service]\nType=oneshot\n{extra}ExecStart=/bin/mount -t tmpfs probe {probe}\n")
            sh("systemctl", "daemon-reload")
            sh("systemctl", "start", "nasd-probe.service")
            seen = mounted(str(probe))
            assert seen == (not extra), f"{extra or 'no namespace'}: mounted as seen by the host: {seen}"
            if seen:
                sh("umount", str(probe))
    finally:
        unit.unlink(missing_ok=True)
        sh("systemctl", "daemon-reload")


def test_start_returns_only_once_the_first_pass_has_mounted_the_dataset_and_configured_the_shares():
    sh("systemctl", "stop", "nasd.service")
    sh("systemctl", "start", "nfs-server.service")
    VDEV.parent.mkdir(parents=True, exist_ok=True)
    secrets = Path("/var/lib/nasd/secrets")
    secrets.mkdir(mode=0o700, exist_ok=True)
    (secrets / "demo").write_text(PASSWORD)
    (secrets / "demo").chmod(0o600)
    docs = [
        {"kind": "ZPool", "metadata": {"name": POOL},
         "spec": {"vdevs": [{"type": "stripe", "devices": [str(VDEV)]}], "files": {str(VDEV): "256Mi"}}},
        {"kind": "ZDataset", "metadata": {"name": "media"}, "spec": {"pool": POOL, "path": "media"}},
        {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}},
        {"kind": "NASUser", "metadata": {"name": "demo"},
         "spec": {"directory": "local", "uid": 2001, "passwordSecretRef": {"file": str(secrets / "demo")}}},
        {"kind": "NASShare", "metadata": {"name": "media"},
         "spec": {"protocol": "smb", "dataset": "media", "smb": {"validUsers": ["demo"]}}},
        {"kind": "NASShare", "metadata": {"name": "media-nfs"},
         "spec": {"protocol": "nfs", "dataset": "media",
                  "nfs": {"clients": [{"hosts": ["127.0.0.1"], "access": "rw", "squash": "none"}]}}},
    ]
    (MANIFESTS / "node.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "nasd.io/v1alpha1", **d} for d in docs]))

    t0 = time.monotonic()
    sh("systemctl", "start", "nasd.service")
    note(f"systemctl start (first pass: pool, dataset, user, SMB and NFS share): {time.monotonic() - t0:.1f} s")
    # checked at once, without waiting: start returned after READY=1, which comes after the first pass
    assert mounted(f"/mnt/{POOL}/media"), journal()
    for kind, name in [("ZPool", POOL), ("ZDataset", "media"), ("NASUser", "demo"), ("NASShare", "media"),
                       ("NASShare", "media-nfs")]:
        assert ready(kind, name), f"{kind}/{name} not Ready when start returned:\n{journal()}"
    assert "serving: " in prop("StatusText")
    os.chmod(f"/mnt/{POOL}/media", 0o777)
    # Samba (uid changes, port 445, /var/lib/nasd) and kernel NFS (exportfs, rpc.mountd) work from the unit
    smb_put("first.txt")
    assert Path(f"/mnt/{POOL}/media/first.txt").read_text() == "first.txt"
    assert f"/mnt/{POOL}/media" in sh("exportfs", "-v").stdout
    client = Path("/var/tmp/nasd-svc/nfs")
    client.mkdir(exist_ok=True)
    sh("mount", "-t", "nfs", "-o", "vers=4.2", f"127.0.0.1:/mnt/{POOL}/media", str(client), timeout=60)
    try:
        assert (client / "first.txt").read_text() == "first.txt"
        (client / "over-nfs.txt").write_text("nfs")
    finally:
        sh("umount", str(client))
    assert Path(f"/mnt/{POOL}/media/over-nfs.txt").read_text() == "nfs"


def test_the_watchdog_restarts_a_wedged_daemon_which_comes_back_ready():
    dropin = Path("/run/systemd/system/nasd.service.d")
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "watchdog.conf").write_text(f"[Service]\nWatchdogSec={WATCHDOG}s\n")
    sh("systemctl", "daemon-reload")
    sh("systemctl", "restart", "nasd.service")
    old = int(prop("MainPID"))
    restarts = int(prop("NRestarts"))
    os.kill(old, 19)  # SIGSTOP: the event loop runs no more, so it sends no WATCHDOG=1
    stopped = time.monotonic()
    poll(lambda: int(prop("NRestarts")) > restarts, timeout=WATCHDOG + 30, what="a restart by the watchdog")
    poll(lambda: prop("ActiveState") == "active", timeout=60, what="the restarted nasd to be active")
    took = time.monotonic() - stopped
    assert int(prop("MainPID")) != old
    assert not Path(f"/proc/{old}").exists()
    assert WATCHDOG - 1 < took < WATCHDOG + 30, took
    # (systemd logs about its units to the kernel log in this VM)
    assert "nasd.service: Watchdog timeout" in sh("dmesg").stdout
    assert mounted(f"/mnt/{POOL}/media") and ready("NASShare", "media")
    smb_put("after-watchdog.txt")
    note(f"watchdog restart: active again {took:.1f} s after SIGSTOP (WatchdogSec={WATCHDOG}s)")


def test_stop_leaves_no_smbd_or_samba_helper_behind():
    ours = in_unit()
    assert {p for p, _, c in samba_processes() if c == "smbd"} & ours, "an SMB share is served: smbd runs"
    t0 = time.monotonic()
    sh("systemctl", "stop", "nasd.service")
    note(f"systemctl stop: {time.monotonic() - t0:.1f} s")
    left = samba_processes()
    assert left == [], f"left after systemctl stop: {left}"
    assert prop("ActiveState") == "inactive" and prop("Result") == "success"


def test_sigkill_of_the_main_process_restarts_it_cleanly_with_one_smbd_serving_the_shares():
    sh("systemctl", "start", "nasd.service")
    old = int(prop("MainPID"))
    restarts = int(prop("NRestarts"))
    before = {p for p, _, c in samba_processes()}
    os.kill(old, 9)
    t0 = time.monotonic()
    poll(lambda: int(prop("NRestarts")) > restarts and prop("ActiveState") == "active", timeout=90,
         what="a restart after SIGKILL")
    note(f"SIGKILL: active again after {time.monotonic() - t0:.1f} s")
    new = int(prop("MainPID"))
    assert new != old
    poll(lambda: ready("NASShare", "media"), timeout=60, what="the SMB share Ready again")
    samba = samba_processes()
    main_smbd = [p for p, pp, c in samba if c == "smbd" and pp == new]
    assert len(main_smbd) == 1, f"one smbd, started by the new nasd: {samba}"
    assert not before & {p for p, _, _ in samba}, f"nothing of the killed nasd's Samba is left: {samba}"
    assert {p for p, _, _ in samba} <= in_unit()
    smb_put("after-kill.txt")
    for name in ("first.txt", "over-nfs.txt", "after-watchdog.txt", "after-kill.txt"):
        assert Path(f"/mnt/{POOL}/media/{name}").exists(), name


def test_make_uninstall_stops_and_removes_the_service_and_keeps_config_state_and_the_pool():
    result = sh(str(SRC / "scripts/install.sh"), "uninstall")  # `make uninstall`
    assert "kept /etc/nasd" in result.stdout
    assert sh("systemctl", "is-active", "nasd.service", check=False).stdout.strip() == "inactive"
    assert not Path("/etc/systemd/system/nasd.service").exists() and not Path("/opt/nasd").exists()
    assert not os.path.lexists("/usr/local/sbin/nasd")
    assert samba_processes() == []
    assert (MANIFESTS / "node.yaml").exists() and Path("/var/lib/nasd").is_dir()
    assert sh("zpool", "list", "-H", "-o", "name", POOL).stdout.strip() == POOL, "the pool is left as it is"
    assert Path(f"/mnt/{POOL}/media/after-kill.txt").exists()
    # what nasd exported stays exported (kept like the pool); the test takes it down to destroy its pool
    Path("/etc/exports.d/nasd.exports").unlink(missing_ok=True)
    sh("exportfs", "-ra")
    sh("systemctl", "stop", "nfs-server.service")
    sh("zpool", "destroy", POOL)
