"""``nasd serve`` as a process, as users run it: the installed console script, its client commands
through the API socket, SIGTERM at the end. For tests of the command line and end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

NASD = str(Path(sys.executable).with_name("nasd")) if Path(sys.executable).with_name("nasd").exists() \
    else shutil.which("nasd")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASD_")}
    env.update(extra)
    return env


def nasd(*args: str | Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    assert NASD, "the nasd console script is not installed"
    return subprocess.run([NASD, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=clean_env(**env), stdin=subprocess.DEVNULL)


def poll(check: Callable[[], Any], timeout: float = 15, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


class Server:
    def __init__(self, proc: subprocess.Popen, socket: Path, log: Path):
        self.proc = proc
        self.socket = socket
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cli(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
        return nasd(*args, "--socket", self.socket, timeout=30, **env)

    def ready(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object if its Ready condition is True, else None."""
        result = self.cli("get", kind, name, "-o", "yaml")
        if result.returncode != 0:
            return None
        item = yaml.safe_load(result.stdout)
        conditions = {c["type"]: c for c in item.get("status", {}).get("conditions", [])}
        return item if conditions.get("Ready", {}).get("status") == "True" else None

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"nasd serve ignored SIGTERM:\n{self.output()}")
        return self.proc.returncode




@contextlib.contextmanager
def serving(pool_env: Any, tmp_path: Path, env: dict[str, str] | None = None,
            **config: Any) -> Iterator[Callable[[Path], Server]]:
    """A starter of ``nasd serve --manifests DIR`` with the test's config (``config`` added to it) and ``env``
    added to its environment; every server started is stopped (SIGTERM) on leaving, before pool_env destroys
    the test's pools."""
    servers: list[Server] = []

    def start(manifests: Path) -> Server:
        cfg = pool_env.write_config(**{"manifestPollSeconds": 0.2, **config})
        sock = tmp_path / "serve.sock"
        sock.unlink(missing_ok=True)  # (a killed server's socket file: the wait below is for this one's)
        log = tmp_path / "serve.log"
        with open(log, "a") as out:  # (a restarted server adds to the same log)
            proc = subprocess.Popen(
                [NASD, "serve", "--manifests", str(manifests), "--config", str(cfg), "--socket", str(sock)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(**(env or {})),
            )
        server = Server(proc, sock, log)
        servers.append(server)
        poll(lambda: sock.exists() or proc.poll() is not None, timeout=20, what="the API socket")
        assert proc.poll() is None, f"nasd serve exited with {proc.returncode}:\n{server.output()}"
        return server

    try:
        yield start
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception:
                pass
