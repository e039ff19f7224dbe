"""Fixtures for the Kubernetes tests: a started test API server with nasd's CRDs installed (by real
kubectl), a kubeconfig, and ``kubectl`` itself."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from .kubeapi import FakeKubeAPI

@dataclass
class KubeEnv:
    api: FakeKubeAPI
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input_: str | None = None) -> subprocess.CompletedProcess[str]:
        """Real kubectl against the test API server (``akubectl`` when the server runs on this thread's loop)."""
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                                text=True, timeout=timeout, input=input_)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    async def akubectl(self, *args: str, check: bool = True, timeout: float = 60,
                       input_: str | None = None) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.kubectl, *args, check=check, timeout=timeout, input_=input_)

    def get(self, plural: str, name: str, namespace: str | None = None, group: str = "nasd.io",
            version: str = "v1alpha1") -> dict[str, Any] | None:
        return self.api.get_object(group, version, plural, name, namespace)

    def mutations(self) -> list[tuple[str, str, str, str]]:
        return [r for r in self.api.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]


async def eventually(check: Callable[[], Any | Awaitable[Any]], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}: last {last!r}")


@pytest.fixture
async def kube_env(tmp_path: Path, pytestconfig: pytest.Config) -> AsyncIterator[KubeEnv]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed (it is on the machine image; see the README)")
    api = FakeKubeAPI(token="nasd-test-token", bookmark_interval=1.0)
    await api.start()
    env = KubeEnv(api, api.write_kubeconfig(tmp_path / "kubeconfig"))
    # the checkout's CRDs (nasd-testing may be installed as a wheel, away from the checkout it tests)
    await env.akubectl("apply", "-f", str(pytestconfig.rootpath / "crds"))
    await env.akubectl("create", "namespace", "nasd-system")
    api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a",
                                                                      "labels": {"kubernetes.io/hostname": "node-a"}}})
    yield env
    await api.stop()
