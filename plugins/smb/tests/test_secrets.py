"""Password files are named by manifests, so they may be anything: nasd reads only a small, private,
regular file, refuses the rest with a reason and a fix, and never waits on one."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nasd_smb.identity import password_of
from nasd_smb.secret_files import MAX_BYTES, SecretFileError, read_secret_file

from nasd.models.identity import SecretRef
from nasd.planning import Problem


def within_a_second(call: Callable[[], Any], unblock: Callable[[], None] = lambda: None) -> Any:
    """What ``call`` returns or raises, asserting it took under a second; if it hangs, ``unblock`` frees it
    so that the test fails instead of hanging."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1)
    took = time.monotonic() - started
    if thread.is_alive():
        unblock()
        thread.join(5)
    assert took < 1 and outcome, "reading the password file did not return within a second"
    return outcome[0]


def refusal(path: Path, unblock: Callable[[], None] = lambda: None) -> SecretFileError:
    result = within_a_second(lambda: read_secret_file(str(path)), unblock)
    assert isinstance(result, SecretFileError), f"not refused: {result!r:.200}"
    assert str(path) in str(result)
    return result


def open_writer(fifo: Path) -> Callable[[], None]:
    """Frees a reader blocked on ``fifo``: a writer that comes and goes."""
    def unblock() -> None:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    return unblock


def private(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(0o600)
    return path


def test_a_private_one_line_file_gives_its_password(tmp_path):
    assert read_secret_file(str(private(tmp_path / "alice", "s3cret\n"))) == "s3cret"
    assert read_secret_file(str(private(tmp_path / "bob", "s3cret"))) == "s3cret"


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "alice"
    os.mkfifo(fifo, 0o600)
    e = refusal(fifo, open_writer(fifo))
    assert e.reason == "SecretNotRegularFile"
    assert f"{fifo} is a FIFO: a password file must be a regular file" in str(e)
    assert "mode 0600" in str(e)


def test_a_device_node_is_refused_without_reading_it(tmp_path):
    assert refusal(Path("/dev/zero")).reason == "SecretNotRegularFile"
    node = tmp_path / "alice"  # a private copy of /dev/null: passes the owner and mode checks
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    e = refusal(node)
    assert e.reason == "SecretNotRegularFile" and "is a character device" in str(e)


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "alice"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        path.chmod(0o600)
        e = refusal(path)
    assert e.reason == "SecretNotRegularFile" and "is a socket" in str(e)


def test_a_directory_is_refused(tmp_path):
    path = tmp_path / "alice"
    path.mkdir(mode=0o700)
    e = refusal(path)
    assert e.reason == "SecretNotRegularFile" and "is a directory" in str(e)


def test_a_symlink_is_not_followed_even_to_a_good_file(tmp_path):
    good = private(tmp_path / "root-only", "s3cret\n")
    link = tmp_path / "alice"
    link.symlink_to(good)
    e = refusal(link)
    assert e.reason == "SecretIsSymlink"
    assert "point passwordSecretRef.file at the file itself" in str(e)


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    huge = tmp_path / "alice"
    with open(huge, "wb") as f:
        f.truncate(300 * 2**20)  # sparse: 300 MB that take no disk
    huge.chmod(0o600)
    e = refusal(huge)
    assert e.reason == "SecretTooLarge" and str(MAX_BYTES) in str(e)


def test_the_size_cap_lets_a_long_line_through_and_refuses_one_byte_more(tmp_path):
    longest = "x" * (MAX_BYTES - 1)
    assert read_secret_file(str(private(tmp_path / "a", longest + "\n"))) == longest
    assert refusal(private(tmp_path / "b", longest + "xy")).reason == "SecretTooLarge"


def test_a_file_others_can_read_or_own_is_refused(tmp_path):
    path = private(tmp_path / "alice", "s3cret\n")
    path.chmod(0o640)
    e = refusal(path)
    assert e.reason == "SecretNotPrivate" and "chmod 600" in str(e)
    path.chmod(0o600)
    os.chown(path, 4321, -1)
    e = refusal(path)
    assert e.reason == "SecretNotPrivate" and "chown" in str(e)


@pytest.mark.parametrize("content", ["", "\n", "two\nlines\n", "windows\r\n", "nul\0byte", b"\xff\xfe"],
                         ids=["empty", "blank", "two-lines", "crlf", "nul", "not-utf8"])
def test_anything_but_one_line_of_text_is_refused_without_quoting_it(tmp_path, content):
    e = refusal(private(tmp_path / "alice", content))
    assert e.reason == "SecretMalformed" and "one line" in str(e)
    assert "lines" not in str(e).replace("one line", "") and "windows" not in str(e)


def test_a_missing_file_says_to_write_it(tmp_path):
    e = refusal(tmp_path / "alice")
    assert e.reason == "SecretNotFound" and "write the password to it" in str(e)


def test_password_of_turns_each_refusal_into_a_problem_with_its_reason(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    problem = within_a_second(lambda: password_of(SecretRef(file=str(fifo)), lambda ref: None), open_writer(fifo))
    assert isinstance(problem, Problem) and problem.reason == "SecretNotRegularFile"
    assert password_of(SecretRef(file=str(private(tmp_path / "ok", "pw\n"))), lambda ref: None) == "pw"
    huge = password_of(SecretRef(name="s", key="k"), lambda ref: "x" * (MAX_BYTES + 1))
    assert isinstance(huge, Problem) and huge.reason == "SecretTooLarge"


# --- a real daemon -------------------------------------------------------------------------------------


class LoopLag:
    """The longest the event loop went without running this task's 10 ms ticks."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - before - 0.01)

    def stop(self) -> float:
        self._task.cancel()
        return self.worst


def fifo_unblocker(fifo: Path, after: float) -> Callable[[], None]:
    """A thread that, should the daemon still wait on ``fifo`` after ``after`` seconds, frees it (a writer that
    comes and goes) so that the test fails instead of hanging; returns its stopper."""
    done = threading.Event()

    def run() -> None:
        if done.wait(after):
            return
        while not done.wait(0.2):
            try:
                open_writer(fifo)()
            except OSError:
                pass  # no reader right now

    threading.Thread(target=run, daemon=True).start()
    return done.set


async def test_a_fifo_as_a_password_file_stalls_neither_the_daemon_nor_the_others(pool_env, smb_env, make_nasd):
    fifo = smb_env.secrets / "alice"
    os.mkfifo(fifo, 0o600)
    d = {"apiVersion": "nasd.io/v1alpha1"}
    docs = [
        pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
        d | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}},
        d | {"kind": "NASUser", "metadata": {"name": "alice"},
             "spec": {"directory": "local", "uid": 2001, "passwordSecretRef": {"file": str(fifo)}}},
        d | {"kind": "NASUser", "metadata": {"name": "bob"},
             "spec": {"directory": "local", "uid": 2002,
                      "passwordSecretRef": {"file": smb_env.secret("bob", "s3cret-Bob")}}},
        d | {"kind": "NASShare", "metadata": {"name": "media"},
             "spec": {"protocol": "smb", "dataset": "media", "smb": {"validUsers": ["bob"]}}},
    ]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    stop_unblocker = fifo_unblocker(fifo, after=3)
    lag = LoopLag()
    try:
        nasd = await make_nasd([folder], watch=True, plugins={
            "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
        for _ in range(4):
            report = await asyncio.wait_for(nasd.reconciler.run_pass(ignore_backoff=True), 60)
            if not report.mutated:
                break
    finally:
        worst = lag.stop()
        stop_unblocker()
    assert worst < 1, f"the event loop stalled for {worst:.1f}s"
    current = nasd.reconciler.current
    alice = current[("NASUser", "alice")].condition("Ready")
    assert alice is not None and alice.status == "False" and alice.reason == "SecretNotRegularFile", alice
    assert f"{fifo} is a FIFO" in alice.message
    for key in [("NASUser", "bob"), ("NASShare", "media"), ("ZDataset", "media")]:
        assert current[key].ready, (key, current[key].condition("Ready"))
    path = current[("ZDataset", "media")].status.mountpoint
    os.chown(path, 2002, 2002)
    assert smb_env.smbclient("media", "bob", "s3cret-Bob", "ls").returncode == 0
