"""Samba's own conformance program, ``smbtorture`` (Debian package samba-testsuite), against a share, and
a stock smbd configured as Samba's selftest configures its test shares, to compare with.

The stock server follows ``selftest/target/Samba3.pm`` (Samba 4.17): its [global] settings for the file
server, and per suite the share ``source3/selftest/tests.py`` runs it against (``tmp``, ``durable``, ``aio``,
``streams_xattr``, ``shadow_write``; ``vfs_fruit_timemachine`` for Time Machine shares). Left out, because
Debian does not ship them or because they only serve Samba's own test harness: the modules ``fake_acls``
(not shipped), ``time_audit`` and ``full_audit`` (logging only), and ``smbd:FSCTL_SMBTORTURE`` (test-only
requests a production server must not answer)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: the suites an ordinary Windows or macOS client exercises
SUITES = ("smb2.connect", "smb2.read", "smb2.rw", "smb2.lock", "smb2.create", "smb2.streams",
          "smb2.durable-open", "smb2.durable-v2-open", "smb2.ioctl.shadow_copy")

#: per suite, the stock shares Samba's selftest runs it against (tests.py); a subtest passes on the stock
#: server when it passes on any of them
STOCK_SHARES = {
    "smb2.connect": ("tmp",), "smb2.read": ("tmp",), "smb2.rw": ("tmp",), "smb2.create": ("tmp",),
    "smb2.lock": ("tmp", "aio"), "smb2.streams": ("tmp", "streams_xattr"),
    "smb2.durable-open": ("durable",), "smb2.durable-v2-open": ("durable",),
    "smb2.ioctl.shadow_copy": ("tmp", "shadow_write"),
}

#: where the conformance test leaves its pass counts for the summary at the end of the run
REPORT = pytest.StashKey[list]()

_RESULT = re.compile(r"^(success|failure|error|skip|xfail): (\S+)", re.M)
TORTURE_OPTIONS = ("--option=torture:sharedelay=100000", "--option=torture:writetimeupdatedelay=500000")


@dataclass
class SuiteResult:
    suite: str
    results: dict[str, str] = field(default_factory=dict)  # subtest -> success | failure | error | skip
    output: str = ""

    @property
    def passed(self) -> set[str]:
        return {t for t, r in self.results.items() if r == "success"}

    @property
    def failed(self) -> set[str]:
        return {t for t, r in self.results.items() if r in ("failure", "error")}


def client_conf(path: Path) -> Path:
    path.write_text("[global]\n\tclient min protocol = SMB2\n")
    return path


def run_suite(share: str, port: int, user: str, password: str, suite: str, conf: Path,
              timeout: float = 600) -> SuiteResult:
    """``smbtorture //127.0.0.1/<share> <suite>``, its per-subtest verdicts (as its subunit lines say)."""
    proc = subprocess.run(
        ["smbtorture", f"//127.0.0.1/{share}", "-p", str(port), "-U", f"{user}%{password}", "-s", str(conf),
         *TORTURE_OPTIONS, suite],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    result = SuiteResult(suite=suite, output=out)
    for verdict, name in _RESULT.findall(out):
        result.results[name] = verdict
    if not result.results:
        raise AssertionError(f"smbtorture ran no subtest of {suite} on {share} (rc {proc.returncode}):\n{out[-3000:]}")
    return result


def panics(log_dir: Path) -> list[str]:
    """Every line of the smbd logs under ``log_dir`` that says PANIC."""
    lines = []
    for path in sorted(log_dir.rglob("*")):
        if path.is_file():
            lines += [ln for ln in path.read_text(errors="replace").splitlines() if "PANIC" in ln]
    return lines


#: [global] of Samba3.pm's file server that bears on SMB2 semantics
_STOCK_GLOBAL = """\
	smbd:validate_oplock_types = yes
	server min protocol = SMB2_02
	server multi channel support = yes
	kernel oplocks = no
	kernel change notify = no
	read only = no
	smbd:sharedelay = 100000
	smbd:writetimeupdatedelay = 500000
	map hidden = no
	map system = no
	map readonly = no
	store dos attributes = yes
	create mask = 755
	dos filemode = yes
	strict rename = yes
	strict sync = yes
	mangled names = yes
	vfs objects = acl_xattr xattr_tdb streams_depot
"""


def _stock_shares(prefix: str, path: str, snapdir_format: str | None) -> str:
    """Samba3.pm's test shares, named ``<prefix>-<share>``, on ``path``."""
    tmp = f"{prefix}-tmp"
    text = f"""
[{tmp}]
	path = {path}
	comment = smb username is [%U]
[{prefix}-durable]
	copy = {tmp}
	kernel share modes = no
	kernel oplocks = no
	posix locking = no
[{prefix}-aio]
	copy = {prefix}-durable
	aio read size = 1
	aio write size = 1
[{prefix}-streams_xattr]
	copy = {tmp}
	vfs objects = streams_xattr xattr_tdb
[{prefix}-vfs_fruit_timemachine]
	path = {path}
	vfs objects = fruit streams_xattr acl_xattr xattr_tdb
	fruit:resource = file
	fruit:metadata = stream
	fruit:time machine = yes
"""
    if snapdir_format:
        text += f"""[{prefix}-shadow_write]
	path = {path}
	vfs objects = shadow_copy2 streams_xattr xattr_tdb
	shadow:mountpoint = {path}
	shadow:snapdir = .zfs/snapshot
	shadow:format = {snapdir_format}
	shadow:fixinodes = yes
	smbd async dosmode = yes
"""
    return text


@dataclass
class StockSmbd:
    """A stock smbd on loopback: Samba's selftest shares on the given folders, users from the same
    identity root (nss_wrapper) as the server it is compared with."""

    root: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    def config(self, folders: dict[str, tuple[str, str | None]]) -> Path:
        """``folders``: share prefix -> (path, shadow:format or None)."""
        r = self.root
        for d, mode in (("", 0o755), ("lock", 0o755), ("pid", 0o755), ("ncalrpc", 0o755), ("private", 0o700),
                        ("log", 0o700)):
            (r / d).mkdir(parents=True, exist_ok=True)
            os.chmod(r / d, mode)
        text = f"""[global]
	server role = standalone server
	security = user
	map to guest = Never
	smb ports = {self.port}
	interfaces = lo
	bind interfaces only = yes
	disable netbios = yes
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	usershare path =
	passdb backend = tdbsam:{r}/private/passdb.tdb
	lock directory = {r}/lock
	state directory = {r}/lock
	cache directory = {r}/lock
	private dir = {r}/private
	pid directory = {r}/pid
	ncalrpc dir = {r}/ncalrpc
	log file = {r}/log/smbd.log
	xattr_tdb:file = {r}/lock/xattr.tdb
""" + _STOCK_GLOBAL
        for prefix, (path, fmt) in folders.items():
            text += _stock_shares(prefix, path, fmt)
        conf = r / "smb.conf"
        conf.write_text(text)
        return conf

    def add_user(self, user: str, password: str) -> None:
        subprocess.run(["smbpasswd", "-c", str(self.root / "smb.conf"), "-s", "-a", user],
                       input=f"{password}\n{password}\n", text=True, env=self.env, check=True, capture_output=True)

    def start(self) -> None:
        out = open(self.root / "log" / "smbd.stdout", "ab")
        self.proc = subprocess.Popen(
            ["smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.root / "smb.conf")],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 20
        while not (self.root / "pid" / "smbd.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"stock smbd did not start: {(self.root / 'log' / 'smbd.stdout').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        conf = str(self.root / "smb.conf")
        for entry in Path("/proc").iterdir():  # samba-dcerpcd and rpcd_* outlive smbd
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(arg in (conf, f"--configfile={conf}") for arg in cmdline) and entry.name.isdigit():
                try:
                    os.kill(int(entry.name), signal.SIGTERM)
                except ProcessLookupError:
                    pass
