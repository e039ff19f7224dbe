"""A pool's health on Kubernetes: each change of a health condition (a device taken offline, back online) is an
Event on the ZPool, a Warning when it turns bad and Normal when it heals, and a condition that stays as it is
makes none, however many passes run. The API server is the test server the other Kubernetes tests use; the
clients are real (kubectl, kubernetes-asyncio); the pool is real zfs-fuse."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import Any, AsyncIterator

import pytest
import yaml

from nasd.config import Config
from nasd.daemon import Nasd
from nasd_testing.kube import KubeEnv, eventually
from nasd_testing.pytest_plugin import PoolEnv

pytestmark = pytest.mark.zfs
NODE = "node-a"


@contextlib.asynccontextmanager
async def serving(cfg: Config) -> AsyncIterator[Nasd]:
    nasd = Nasd(cfg, watch=True)
    await nasd.start()
    loop = asyncio.get_running_loop().create_task(nasd.reconciler.loop())
    try:
        yield nasd
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await nasd.stop()


def pool_events(kube: KubeEnv, pool: str) -> list[tuple[str, str, str]]:
    events = kube.api.list_objects("", "v1", "events", "default")
    return [(e["type"], e["reason"], e["message"]) for e in sorted(events, key=lambda e: e["metadata"]["resourceVersion"])
            if e["involvedObject"]["kind"] == "ZPool" and e["involvedObject"]["name"] == pool]


def condition(kube: KubeEnv, pool: str, type_: str) -> dict[str, Any] | None:
    obj = kube.get("zpools", pool) or {}
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


async def test_a_device_going_offline_and_back_is_one_warning_and_one_normal_event_and_no_flood(
        pool_env: PoolEnv, kube_env: KubeEnv, tmp_path: Any) -> None:
    doc = pool_env.pool_manifest(vdev_type="mirror", devices=2)
    doc["spec"]["node"] = NODE
    pool, gone = doc["metadata"]["name"], pool_env.vdev("tank-1")
    (tmp_path / "pool.yaml").write_text(yaml.safe_dump(doc))
    cfg = Config.model_validate(pool_env.config(plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)},
        "kubernetes": {"kubeconfig": str(kube_env.kubeconfig), "nodeName": NODE, "namespace": "nasd-system",
                       "watchTimeoutSeconds": 5},
    }, resyncSeconds=0.5))  # (a pass every half second: a condition that stays the same must not repeat)
    async with serving(cfg) as nasd:
        await kube_env.akubectl("apply", "-f", str(tmp_path / "pool.yaml"))
        await eventually(lambda: (condition(kube_env, pool, "Ready") or {}).get("status") == "True", 30, "Ready")
        await eventually(lambda: [e[1] for e in pool_events(kube_env, pool)] == ["Created"], 10, "the Created event")
        await eventually(lambda: (condition(kube_env, pool, "Degraded") or {}).get("status") == "False", 10,
                         "the pool's health conditions")
        assert [e[1] for e in pool_events(kube_env, pool)] == ["Created"]  # (first seen healthy: no event)

        subprocess.run(["zpool", "offline", pool, gone], check=True)
        await eventually(lambda: len(pool_events(kube_env, pool)) == 2, 15, "the Degraded event")
        kind, reason, message = pool_events(kube_env, pool)[1]
        assert (kind, reason) == ("Warning", "PoolDegraded")
        assert message.startswith(f"Degraded: pool {pool} is DEGRADED: {gone} in mirror-0 is OFFLINE") and NODE in message
        passes = nasd.metrics.pass_count
        await eventually(lambda: nasd.metrics.pass_count >= passes + 4, 15, "four more passes")
        assert len(pool_events(kube_env, pool)) == 2  # still degraded: no new event

        subprocess.run(["zpool", "online", pool, gone], check=True)
        await eventually(lambda: len(pool_events(kube_env, pool)) >= 3, 15, "the healed event")
        passes = nasd.metrics.pass_count
        await eventually(lambda: nasd.metrics.pass_count >= passes + 4, 15, "four more passes")
        events = pool_events(kube_env, pool)
        assert [(e[0], e[1]) for e in events] == [("Normal", "Created"), ("Warning", "PoolDegraded"),
                                                  ("Normal", "Healthy")], events
        assert events[2][2].startswith(f"Degraded: pool {pool} is ONLINE")
        table = (await kube_env.akubectl("describe", "zpool", pool)).stdout
        assert "PoolDegraded" in table and "Healthy" in table
