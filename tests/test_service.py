"""nasd as a systemd service, on this host: the unit passes `systemd-analyze verify`; a real `nasd serve` speaks
systemd's notify protocol to a datagram socket the test binds (READY=1 only after the first reconcile pass,
WATCHDOG=1 from the event loop and none while it is stopped, STOPPING=1 at SIGTERM); `make install` and
`make uninstall` into a throwaway root. The same under a real systemd, with OpenZFS: tests/vm/test_systemd_service.py."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from nasd.service import Notifier
from nasd_testing.serve import NASD, Server, clean_env, poll

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "nasd.service"


class NotifySocket:
    """A datagram socket as systemd binds it for a Type=notify service; collects (monotonic time, message)."""

    def __init__(self, address: str | bytes):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: queue.Queue[tuple[float, str]] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.put((time.monotonic(), data.decode()))

    def wait_for(self, field: str, timeout: float) -> tuple[float, str, list[str]]:
        """The first message with ``field`` as a line, and every message before it."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {field} within {timeout}s; got {seen}") from None
            if field in message.split("\n"):
                return at, message, seen
            seen.append(message)

    def drain(self, seconds: float) -> list[tuple[float, str]]:
        """What arrives during the next ``seconds`` (and whatever was waiting)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(str(tmp_path / "notify.sock"))
    yield s
    s.close()


def _slow_zfs(tmp_path: Path) -> Path:
    """The real zfs behind a wrapper that takes a second more for each `zfs create` (a first pass that takes
    time) and notes whether systemd's variables reached the programs nasd runs."""
    real = shutil.which("zfs")
    assert real
    wrapper = tmp_path / "zfs"
    wrapper.write_text(f"""#!/bin/sh
env | grep -E '^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=' >> {tmp_path}/child-env
[ "$1" = create ] && sleep 1
exec {real} "$@"
""")
    wrapper.chmod(0o755)
    (tmp_path / "child-env").write_text("")
    return wrapper


@pytest.fixture
def serve_notified(pool_env, tmp_path: Path, notify_socket: NotifySocket) -> Iterator:
    """A starter of the real `nasd serve` with a pool and a dataset to create, NOTIFY_SOCKET pointing at the
    test's socket and the given extra environment (e.g. WATCHDOG_USEC)."""
    servers: list[Server] = []
    manifests = tmp_path / "manifests"
    pool_env.write_manifests(manifests, pool_env.pool_manifest(), pool_env.dataset_manifest("media"))

    def start(**env: str) -> Server:
        cfg = pool_env.write_config(manifestPollSeconds=0.2, programs={"zfs": str(_slow_zfs(tmp_path))})
        sock, log = tmp_path / "serve.sock", tmp_path / "serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [NASD, "serve", "--manifests", str(manifests), "--config", str(cfg), "--socket", str(sock)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=clean_env(NOTIFY_SOCKET=str(notify_socket.address), **env),
            )
        server = Server(proc, sock, log)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
                server.stop()


def test_ready_is_sent_only_once_the_first_pass_has_created_and_mounted_the_dataset(
        serve_notified, notify_socket, pool_env, tmp_path):
    started = time.monotonic()
    server = serve_notified()
    at, message, before = notify_socket.wait_for("READY=1", timeout=60)
    # checked at once, without polling: a READY=1 sent before the pass was over finds the dataset missing
    assert server.ready("ZDataset", "media"), f"READY=1 came before the dataset was Ready:\n{server.output()}"
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/media", "mounted")["mounted"] == "yes"
    assert at - started > 1.0, "the first pass runs a `zfs create` that takes a second"
    assert "STATUS=serving: 2 of 2 resources Ready" in message.split("\n")
    assert "STATUS=starting" in before, before
    assert "ready: serving: 2 of 2 resources Ready" in server.output()
    # systemd's variables are nasd's alone: the programs it starts (smbd speaks the same protocol) never see them
    assert (tmp_path / "child-env").read_text() == ""
    assert server.stop() == 0


def test_the_watchdog_is_fed_from_the_event_loop_and_stops_while_the_loop_is_stopped(serve_notified, notify_socket):
    server = serve_notified(WATCHDOG_USEC="400000")  # WatchdogSec=0.4s: a ping every 0.2 s
    notify_socket.wait_for("READY=1", timeout=60)
    pings = [at for at, m in notify_socket.drain(2.0) if "WATCHDOG=1" in m.split("\n")]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert len(pings) >= 7 and max(gaps) < 0.35, f"pings every 0.2 s expected: {gaps}"

    server.proc.send_signal(signal.SIGSTOP)  # a wedged loop: nothing runs
    time.sleep(0.1)
    notify_socket.drain(0.05)  # (what was sent before it stopped)
    assert [m for _, m in notify_socket.drain(1.5) if "WATCHDOG=1" in m] == [], "a stopped loop cannot ping"
    server.proc.send_signal(signal.SIGCONT)
    notify_socket.wait_for("WATCHDOG=1", timeout=1.0)
    assert server.stop() == 0


def test_stopping_is_sent_at_sigterm_before_nasd_exits(serve_notified, notify_socket):
    server = serve_notified()
    notify_socket.wait_for("READY=1", timeout=60)
    server.proc.send_signal(signal.SIGTERM)
    at, _, _ = notify_socket.wait_for("STOPPING=1", timeout=10)
    assert server.proc.wait(20) == 0
    assert at < time.monotonic()


def test_a_watchdog_meant_for_another_process_is_not_fed_but_ready_is_still_sent(serve_notified, notify_socket):
    server = serve_notified(WATCHDOG_USEC="400000", WATCHDOG_PID="1")
    notify_socket.wait_for("READY=1", timeout=60)
    assert [m for _, m in notify_socket.drain(1.0) if "WATCHDOG=1" in m] == []
    assert server.stop() == 0


def test_without_notify_socket_nothing_is_sent_and_no_watchdog_runs():
    env = {"WATCHDOG_USEC": "1000000"}
    notifier = Notifier.from_environment(env)
    assert not notifier.enabled and notifier.watchdog_seconds is None
    assert notifier.notify("READY=1") is False
    assert env == {}, "the variables are taken out of the environment either way"


def test_an_abstract_notify_socket_is_reached(tmp_path):
    name = f"@nasd-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifySocket(b"\0" + name[1:].encode())
    try:
        env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        notifier = Notifier.from_environment(env)
        assert notifier.watchdog_seconds == 1.0
        assert notifier.notify("READY=1", "STATUS=x")
        assert listener.wait_for("READY=1", timeout=2)[1] == "READY=1\nSTATUS=x"
        notifier.close()
    finally:
        listener.close()


# -- the unit -------------------------------------------------------------------------------


def _directives(unit: Path) -> dict[str, str]:
    text = re.sub(r"\\\n\s*", " ", unit.read_text())
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def _verify(unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stdout + result.stderr


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    copy = tmp_path / "nasd.service"
    assert NASD
    copy.write_text(UNIT.read_text().replace("/usr/local/sbin/nasd", NASD))  # (not installed on this host)
    _verify(copy)


def test_the_unit_is_notify_with_a_watchdog_restarts_on_failure_and_kills_every_child():
    d = _directives(UNIT)
    assert (d["Type"], d["NotifyAccess"], d["Restart"], d["KillMode"]) == ("notify", "main", "on-failure",
                                                                          "control-group")
    assert d["WatchdogSec"] == "30s" and d["TimeoutStartSec"] == "15min"
    assert d["ExecStart"] == "/usr/local/sbin/nasd serve --config /etc/nasd/config.yaml"
    # any of these gives the unit its own mount namespace: the datasets nasd mounts would not be seen by the
    # host, by the kernel NFS server's rpc.mountd or by an admin
    namespaced = {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths", "ReadOnlyPaths",
                  "InaccessiblePaths", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                  "ProtectControlGroups", "ProtectProc", "PrivateMounts", "BindPaths", "TemporaryFileSystem",
                  "MountFlags", "ProtectHostname", "ProtectClock", "DevicePolicy", "DeviceAllow"}
    assert namespaced & d.keys() == set()


# -- make install / make uninstall ------------------------------------------------------------


def _make(target: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["make", "-s", "-C", str(REPO), target, f"ROOT={root}", *(f"{k}={v}" for k, v in env.items())],
                            capture_output=True, text=True, timeout=300, env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_make_install_upgrade_and_uninstall_into_a_throwaway_root(tmp_path):
    root = tmp_path / "root"
    out = _make("install", root).stdout
    nasd = root / "usr/local/sbin/nasd"
    assert nasd.is_symlink() and os.readlink(nasd) == str(root / "opt/nasd/bin/nasd")
    plugins = subprocess.run([str(nasd), "plugins"], capture_output=True, text=True, check=True).stdout
    for name in ("zfs", "smb", "nfs", "snapshots", "timemachine", "kubernetes"):
        assert re.search(rf"^{name}\b", plugins, re.M), plugins
    config = root / "etc/nasd/config.yaml"
    assert f"stateDir: {root}/var/lib/nasd" in config.read_text()
    assert f"manifests: [{root}/etc/nasd/manifests.d]" in config.read_text()
    assert (root / "etc/nasd/manifests.d").is_dir() and (root / "var/lib/nasd").is_dir()
    unit = root / "etc/systemd/system/nasd.service"
    assert _directives(unit)["ExecStart"] == f"{nasd} serve --config {config}"
    _verify(unit)  # the installed unit, its ExecStart resolvable
    assert (root / "etc/systemd/system/multi-user.target.wants/nasd.service").is_symlink()
    assert "wrote" in out

    # an upgrade keeps the configuration, the manifests and the state
    config.write_text(config.read_text() + "# edited by the admin\n")
    (root / "etc/nasd/manifests.d/pool.yaml").write_text("kind: ZPool\n")
    (root / "var/lib/nasd/resources.json").write_text("{}")
    (root / "opt/nasd/lib/stale-marker").write_text("")
    out = _make("install", root).stdout
    assert "keeping" in out and config.read_text().endswith("# edited by the admin\n")
    assert (root / "etc/nasd/manifests.d/pool.yaml").read_text() == "kind: ZPool\n"
    assert (root / "var/lib/nasd/resources.json").read_text() == "{}"
    subprocess.run([str(nasd), "--version"], check=True, capture_output=True)

    out = _make("uninstall", root).stdout
    assert not nasd.exists() and not nasd.is_symlink() and not (root / "opt/nasd").exists()
    assert not unit.exists() and not (root / "etc/systemd/system/multi-user.target.wants/nasd.service").is_symlink()
    assert config.exists() and (root / "var/lib/nasd/resources.json").exists(), "uninstall keeps config and state"
    assert "PURGE=1" in out
    _make("uninstall", root, PURGE="1")
    assert not (root / "etc/nasd").exists() and not (root / "var/lib/nasd").exists()
