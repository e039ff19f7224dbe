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
