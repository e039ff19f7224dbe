"""A private network namespace for mDNS tests: loopback up, with multicast (the machine's own loopback
has no multicast, and a test must not change the machine's network)."""

from __future__ import annotations

import ctypes
import os
import subprocess

import pytest

CLONE_NEWNET = 0x40000000


@pytest.fixture
def private_network():
    """Moves the test's thread (and so smbd, smbclient and nasd's mDNS, which it starts) into a new network
    namespace for the test, and back afterwards. Request it before ``make_nasd`` so that it outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())} (the tests run as root)")
        subprocess.run(["ip", "link", "set", "lo", "up", "multicast", "on"], check=True)
        yield
    finally:
        if libc.setns(original, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
        os.close(original)


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True)


@pytest.fixture
def avahi(private_network, pool_env, tmp_path):
    """A private avahi-daemon (with its own system dbus) in the test's network namespace, its service folder
    a temporary one bind-mounted over /etc/avahi/services; the mounts stay in the tests' private mount
    namespace (``pool_env`` entered it). Yields that folder."""
    import shutil
    if not shutil.which("avahi-daemon", path="/usr/sbin:/sbin:/usr/bin") or not shutil.which("dbus-daemon"):
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail("avahi-daemon or dbus-daemon is not installed (make test installs them)")
        pytest.skip("avahi-daemon or dbus-daemon is not installed")
    if pool_env.daemon.kernel:
        # with kernel ZFS the tests share the machine's mount namespace: never mount over its /run/dbus
        from nasd_testing.zfs import _enter_private_mount_namespace
        _enter_private_mount_namespace()
    services = tmp_path / "avahi-services"
    services.mkdir()
    mounted = []
    try:
        for d in ("/run/dbus", "/run/avahi-daemon"):
            os.makedirs(d, exist_ok=True)
            _mount("-t", "tmpfs", "tmpfs", d)
            mounted.append(d)
        os.makedirs("/etc/avahi/services", exist_ok=True)
        _mount("--bind", str(services), "/etc/avahi/services")
        mounted.append("/etc/avahi/services")
        subprocess.run(["dbus-daemon", "--system", "--fork"], check=True, capture_output=True)
        subprocess.run(["avahi-daemon", "--daemonize", "--no-drop-root", "--no-chroot", "--no-rlimits"],
                       check=True, capture_output=True)
        yield services
    finally:
        subprocess.run(["avahi-daemon", "--kill"], capture_output=True)
        try:
            os.kill(int(open("/run/dbus/pid").read().strip()), 15)
        except (OSError, ValueError):
            pass
        for d in reversed(mounted):
            subprocess.run(["umount", "-l", d], capture_output=True)
