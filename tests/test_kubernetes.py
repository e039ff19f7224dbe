"""nasd on Kubernetes, end to end: `kubectl apply` custom objects to an API server, the Kubernetes plugin
feeds this node's share of them to the core, which converges them on the real zfs-fuse pool; status,
Events and finalizers go back to the cluster; each SMB share runs as a pod (ConfigMap, Deployment,
Service), and that pod, run from the API server's own objects, serves the share to real smbclient.

The API server is the test server in ``nasd_testing.kubeapi`` (no kube-apiserver can be had here); the
clients are real: kubectl 1.32 and kubernetes-asyncio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator

import kubernetes_validate
import pytest
import yaml

from nasd.config import Config
from nasd.daemon import Nasd
from nasd.models import parse_resource
from nasd_testing.kube import KubeEnv, eventually
from nasd_testing.pods import run_pod
from nasd_testing.pytest_plugin import PoolEnv

pytestmark = pytest.mark.zfs
NODE = "node-a"
NS = "nasd-system"


def ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c
    return None


def is_ready(obj: dict[str, Any] | None) -> bool:
    c = ready(obj)
    return bool(c and c["status"] == "True" and c.get("observedGeneration") == obj["metadata"]["generation"])


def manifests(pool_env: PoolEnv, folder: Path, *, share: dict[str, Any] | None = None) -> Path:
    pool = pool_env.pool_manifest()
    pool["spec"]["node"] = NODE
    docs = [
        pool,
        pool_env.dataset_manifest("media", owner={"uid": 3001}),
        {"apiVersion": "nasd.io/v1alpha1", "kind": "NASDirectory", "metadata": {"name": "local"},
         "spec": {"type": "local"}},
        {"apiVersion": "nasd.io/v1alpha1", "kind": "NASUser", "metadata": {"name": "alice"},
         "spec": {"directory": "local", "uid": 3001, "passwordSecretRef": {"name": "alice-pw", "key": "password"}}},
        share or {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
                  "spec": {"protocol": "smb", "dataset": "media", "smb": {"validUsers": ["alice"]}}},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nas.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return folder


def config(pool_env: PoolEnv, kube: KubeEnv, node: str = NODE) -> Config:
    return Config.model_validate(pool_env.config(plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)},
        "kubernetes": {"kubeconfig": str(kube.kubeconfig), "nodeName": node, "namespace": NS,
                       "watchTimeoutSeconds": 5},
        "smb": {"mode": "pod", "podImage": "registry.example/nasd:0.1.0"},
    }, resyncSeconds=3600))


@contextlib.asynccontextmanager
async def serving(cfg: Config) -> AsyncIterator[Nasd]:
    """`nasd serve` in this process: the watcher's tasks and the reconcile loop."""
    nasd = Nasd(cfg, watch=True)
    await nasd.start()
    loop = asyncio.get_running_loop().create_task(nasd.reconciler.loop())
    try:
        yield nasd
    finally:
        loop.cancel()
        try:
            await loop
        except asyncio.CancelledError:
            pass
        await nasd.stop()


@pytest.fixture
async def daemon(pool_env: PoolEnv, kube_env: KubeEnv) -> AsyncIterator[Nasd]:
    """nasd on node-a."""
    async with serving(config(pool_env, kube_env)) as nasd:
        yield nasd


def secret(name: str, password: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "data": {"password": base64.b64encode(password.encode()).decode()}}


def pod_objects(kube: KubeEnv, share: str) -> tuple[dict, dict, dict]:
    name = f"nasd-smb-{share}"
    return (kube.get("configmaps", name, NS, "", "v1"), kube.get("deployments", name, NS, "apps", "v1"),
            kube.get("services", name, NS, "", "v1"))


async def idle(nasd: Nasd, quiet: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until the daemon has run no pass for ``quiet`` seconds."""
    loop = asyncio.get_running_loop()
    count, since, deadline = nasd.metrics.pass_count, loop.time(), loop.time() + timeout
    while loop.time() - since < quiet:
        assert loop.time() < deadline, "the daemon never went idle"
        await asyncio.sleep(0.1)
        if nasd.metrics.pass_count != count:
            count, since = nasd.metrics.pass_count, loop.time()


async def _has_event(text: Any, reason: str) -> bool:
    lines = (await text).split("Events:", 1)[-1].splitlines()
    return any(reason in line.split() for line in lines)


def serve_pod(kube: KubeEnv, share: str, workdir: Path, check: str):
    config_map, deployment, _ = pod_objects(kube, share)
    secrets = {s["metadata"]["name"]: s for s in kube.api.list_objects("", "v1", "secrets", NS)}
    return run_pod(deployment, {config_map["metadata"]["name"]: config_map}, secrets, workdir, check,
                   wait_for_port=445)


def test_share_pods_of_long_or_dotted_names_have_unique_valid_names() -> None:
    from nasd_kubernetes.workloads import object_name
    from nasd_smb.pod import workload_name

    def share(name: str):
        return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
                               "spec": {"protocol": "smb", "dataset": "d"}})
    assert workload_name(share("media")) == "smb-media"
    assert workload_name(share("a.b")) != workload_name(share("a-b"))
    long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
    assert workload_name(share(long_a)) != workload_name(share(long_b))
    for name in ("a.b", long_a, "y" * 253):
        label = object_name(workload_name(share(name)))
        assert len(label) <= 63 and label.replace("-", "").isalnum() and label[0].isalpha(), label
    assert object_name("w" * 63) != object_name("w" * 62 + "v") and len(object_name("w" * 63)) <= 63


async def test_kubectl_apply_converges_on_the_node_and_the_share_pod_serves_the_dataset(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    kube_env.api.put_object(secret("alice-pw", "Sekr1t-pw"))
    folder = manifests(pool_env, tmp_path / "manifests")
    await kube_env.akubectl("apply", "-f", str(folder))

    share = await eventually(lambda: is_ready(kube_env.get("nasshares", "media")) and kube_env.get("nasshares", "media"),
                             60, "the share Ready with the generation observed")
    for plural, name in (("zpools", pool_env.pool_name()), ("zdatasets", "media"), ("nasusers", "alice")):
        await eventually(lambda: is_ready(kube_env.get(plural, name)), 10, f"{plural}/{name} Ready")
    assert kube_env.get("nasusers", "alice")["status"]["nodes"][NODE]["status"] == "True"
    mountpoint = kube_env.get("zdatasets", "media")["status"]["mountpoint"]
    assert Path(mountpoint).is_dir()
    assert share["metadata"]["finalizers"] == ["nasd.io/cleanup"]
    assert share["status"]["node"] == NODE and share["status"]["unc"] == f"\\\\{NODE}\\media"

    # the share's pod: valid objects, owned by the share, pinned to the node, reachable through a NodePort
    config_map, deployment, service = pod_objects(kube_env, "media")
    for obj in (config_map, deployment, service):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == share["metadata"]["uid"]
        kubernetes_validate.validate({k: v for k, v in obj.items() if k != "status"}, "1.32", strict=True)
    terms = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE]}]}]
    assert service["spec"]["type"] == "NodePort"
    await eventually(lambda: kube_env.get("nasshares", "media")["status"].get("nodePort"), 10, "the node port")

    # kubectl shows it: the printer columns and, in describe, the Event of the share becoming Ready
    table = (await kube_env.akubectl("get", "nasshares")).stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "REASON", "PROTOCOL", "UNC", "AGE"], table
    assert table.split("\n")[1].split()[:5] == ["media", "True", "Ready", "smb", f"\\\\{NODE}\\media"], table
    async def described() -> str:
        return (await kube_env.akubectl("describe", "nasshare", "media")).stdout

    text = await eventually(lambda: described(), 10, "the describe output")
    assert await eventually(lambda: _has_event(described(), "Created"), 10, "the Created event in describe"), text

    # the pod, run from the API server's own ConfigMap, Deployment and Secret, serves the dataset
    result = await asyncio.to_thread(
        serve_pod, kube_env, "media", tmp_path / "pod",
        "smbclient //127.0.0.1/media -U alice%Sekr1t-pw -c 'put /etc/hostname from-pod.txt' && "
        "! smbclient //127.0.0.1/media -U alice%wrong -c ls")
    assert result.returncode == 0, result.stdout + result.stderr
    written = Path(mountpoint) / "from-pod.txt"
    assert written.read_text() == Path("/etc/hostname").read_text() and written.stat().st_uid == 3001

    # applying the same manifests again changes nothing: no write to the API server, no mutating command
    mutations, spawns = len(kube_env.mutations()), len([s for s in daemon.runner.spawns if s.mutating])
    assert "unchanged" in (await kube_env.akubectl("apply", "-f", str(folder))).stdout
    await daemon.reconciler.run_pass()
    await asyncio.sleep(1.0)
    assert kube_env.mutations()[mutations:] == []
    assert [s.argv for s in daemon.runner.spawns if s.mutating][spawns:] == []

    # kubectl delete waits for nasd's finalizer: the share's pod objects go, the data stays (Retain)
    await kube_env.akubectl("delete", "nasshare", "media", "--timeout=60s")
    assert kube_env.get("nasshares", "media") is None
    assert pod_objects(kube_env, "media") == (None, None, None)
    assert written.exists()
    events = kube_env.api.list_objects("", "v1", "events", "default")
    assert [e["type"] for e in events if e["reason"] == "Pruned" and e["involvedObject"]["name"] == "media"] == \
        ["Normal"]


async def test_a_changed_password_secret_restarts_the_share_pod_with_it(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    kube_env.api.put_object(secret("alice-pw", "first-pw"))
    await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
    await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "the share Ready")
    before = pod_objects(kube_env, "media")[1]["spec"]["template"]["metadata"]["annotations"]

    await kube_env.akubectl("create", "secret", "generic", "alice-pw", "-n", NS, "--from-literal=password=second-pw",
                            "--dry-run=client", "-o", "yaml")  # kubectl can render it ...
    kube_env.api.put_object(secret("alice-pw", "second-pw"))  # ... and the Secret changes
    await eventually(lambda: pod_objects(kube_env, "media")[1]["spec"]["template"]["metadata"]["annotations"] != before,
                     20, "a new pod template")
    result = await asyncio.to_thread(
        serve_pod, kube_env, "media", tmp_path / "pod",
        "smbclient //127.0.0.1/media -U alice%second-pw -c ls && ! smbclient //127.0.0.1/media -U alice%first-pw -c ls")
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_missing_secret_is_reported_on_the_user(pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd,
                                                        tmp_path: Path) -> None:
    await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
    user = await eventually(lambda: (ready(kube_env.get("nasusers", "alice")) or {}).get("reason") == "SecretNotFound"
                            and kube_env.get("nasusers", "alice"), 30, "SecretNotFound")
    assert f"Secret {NS}/alice-pw does not exist" in ready(user)["message"]
    kube_env.api.put_object(secret("alice-pw", "now-there"))
    await eventually(lambda: is_ready(kube_env.get("nasusers", "alice")), 20, "the user Ready once the Secret exists")


async def test_each_node_takes_only_its_own_pools_and_a_deleted_object_whose_node_is_gone_is_released(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    other = pool_env.pool_manifest("far")
    other["spec"].update(node="node-b", deletionPolicy="Destroy")
    far_share = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "far-share"},
                 "spec": {"protocol": "smb", "dataset": "far-data"}}
    far_data = pool_env.dataset_manifest("far-data", pool="far")
    folder = manifests(pool_env, tmp_path / "m")
    (folder / "far.yaml").write_text(yaml.safe_dump_all([other, far_data, far_share], sort_keys=False))
    kube_env.api.put_object(secret("alice-pw", "pw-1234"))
    await kube_env.akubectl("apply", "-f", str(folder))
    await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "node-a's share Ready")

    # node-b's objects: untouched by node-a (no pool made, no status, no finalizer)
    assert pool_env.pool_name("far") not in pool_env.daemon.all_pools()
    for plural, name in (("zpools", pool_env.pool_name("far")), ("zdatasets", "far-data"), ("nasshares", "far-share")):
        obj = kube_env.get(plural, name)
        assert not obj.get("status") and not obj["metadata"].get("finalizers"), obj

    # node-b's nasd had put its finalizer on its share, then node-b left the cluster: deleting the
    # share must not hang for ever; node-a sees the node is gone and releases it
    share = kube_env.get("nasshares", "far-share")
    share["metadata"]["finalizers"] = ["nasd.io/cleanup"]
    share["metadata"]["annotations"] = {"nasd.io/node": "node-b"}
    kube_env.api.put_object(share)
    kube_env.api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b"}})
    await kube_env.akubectl("delete", "nasshare", "far-share", "--wait=false")
    await asyncio.sleep(1.0)
    assert kube_env.get("nasshares", "far-share") is not None  # node-b exists: it is node-b's to clean up
    kube_env.api.delete_object_now("", "v1", "nodes", "node-b")
    await eventually(lambda: kube_env.get("nasshares", "far-share") is None, 20, "the finalizer released")


async def test_the_watch_survives_drops_expiry_and_an_api_server_restart_without_missing_or_repeating_anything(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    from kubernetes_asyncio import client, config as kconfig

    kube_env.api.put_object(secret("alice-pw", "pw-1234"))
    await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
    await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "the share Ready")
    source = daemon.pm.get_plugin("kubernetes").source

    cfg = client.Configuration()
    await kconfig.load_kube_config(config_file=str(kube_env.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        custom = client.CustomObjectsApi(api)

        async def add_dataset(name: str) -> None:
            await custom.create_cluster_custom_object("nasd.io", "v1alpha1", "zdatasets",
                                                      pool_env.dataset_manifest(name))

        # 1. the server drops every watch: the next change still arrives
        await kube_env.api.drop_watches()
        await add_dataset("after-drop")
        # 2. the history is compacted while the watches are down: 410 Expired, a fresh list
        await kube_env.api.drop_watches()
        kube_env.api.compact()
        await add_dataset("after-expiry")
        # 3. the API server restarts (objects kept)
        await kube_env.api.restart()
        await add_dataset("after-restart")
        for name in ("after-drop", "after-expiry", "after-restart"):
            await eventually(lambda: is_ready(kube_env.get("zdatasets", name)), 60, f"{name} Ready")
        # a deletion while the API server is down and its history is gone is still seen (a fresh list)
        expired = source.watcher.counts["expired"]
        await kube_env.api.stop()
        kube_env.api.delete_object_now("nasd.io", "v1alpha1", "zdatasets", "after-drop")
        kube_env.api.compact()
        await asyncio.sleep(0.5)
        await kube_env.api.start()
        # (a Retain dataset leaves the node's data alone: the core just stops managing it)
        await eventually(lambda: ("ZDataset", "after-drop") not in daemon.reconciler.current, 30, "the deletion seen")
        assert source.watcher.counts["expired"] > expired

    assert source.watcher.counts["expired"] >= 1
    creates = [s.argv for s in daemon.runner.spawns
               if s.mutating and Path(s.argv[0]).name == "zfs" and s.argv[1] == "create"]
    for name in ("after-drop", "after-expiry", "after-restart"):
        assert sum(1 for a in creates if a[-1].endswith(f"/{name}")) == 1, creates


async def test_a_restarted_nasd_writes_nothing_that_is_already_in_the_cluster(
        pool_env: PoolEnv, kube_env: KubeEnv, tmp_path: Path) -> None:
    kube_env.api.put_object(secret("alice-pw", "pw-1234"))
    await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
    async with serving(config(pool_env, kube_env)):
        await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "the share Ready")
        await asyncio.sleep(1.0)  # the follow-up pass and its writes
    mutations = len(kube_env.mutations())
    async with serving(config(pool_env, kube_env)) as nasd:
        source = nasd.pm.get_plugin("kubernetes").source
        await eventually(lambda: source.watcher.synced and nasd.metrics.pass_count >= 2, 20,
                         "the new daemon synced and through two passes")
        await asyncio.sleep(1.0)  # and its writer idle
        assert source.counts == {"status_patches": 0, "events": 0, "finalizers_added": 0, "finalizers_removed": 0}
        assert kube_env.mutations()[mutations:] == []
        assert [s.argv for s in nasd.runner.spawns if s.mutating] == []


async def test_a_spec_nasd_refuses_keeps_the_last_valid_one_in_effect_and_says_why(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    kube_env.api.put_object(secret("alice-pw", "pw-1234"))
    await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
    await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "the share Ready")
    config_map = pod_objects(kube_env, "media")[0]

    # the CRD's schema accepts it (a share name is a string there); nasd's own check does not (a name Samba keeps)
    await kube_env.akubectl("patch", "nasshare", "media", "--type=merge", "-p",
                            json.dumps({"spec": {"smb": {"name": "global"}}}))
    share = await eventually(lambda: (ready(kube_env.get("nasshares", "media")) or {}).get("reason") == "InvalidSpec"
                             and kube_env.get("nasshares", "media"), 20, "InvalidSpec")
    assert "spec.smb.name" in ready(share)["message"] and "last valid spec" in ready(share)["message"]
    assert pod_objects(kube_env, "media")[0] == config_map  # the share is served as before
    assert ("NASShare", "media") in daemon.reconciler.current
    writes = len(kube_env.mutations())
    kube_env.api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {  # a watch event, nothing to do
        "name": NODE, "labels": {"kubernetes.io/hostname": NODE, "touched": "yes"}}})
    await asyncio.sleep(2.0)
    # the refused spec's status is written once, not on every event
    assert [m for m in kube_env.mutations()[writes:] if "/nasshares/media" in m[1]] == []

    await kube_env.akubectl("patch", "nasshare", "media", "--type=merge", "-p",
                            json.dumps({"spec": {"smb": {"name": None}}}))
    await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 20, "Ready again")


async def test_an_object_no_node_can_take_says_why(pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd) -> None:
    await kube_env.akubectl("apply", "-f", "-", input_=yaml.safe_dump(
        {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "orphan"},
         "spec": {"protocol": "smb", "dataset": "nowhere"}}))
    share = await eventually(lambda: ready(kube_env.get("nasshares", "orphan")), 20, "a Ready condition")
    assert (share["status"], share["reason"]) == ("False", "NoNode")
    assert "ZDataset nowhere does not exist" in share["message"]


async def test_a_pool_moved_to_another_node_is_released_here_never_destroyed(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    pool = pool_env.pool_manifest()
    pool["spec"].update(node=NODE, deletionPolicy="Destroy", destroyRecursive=True)
    await kube_env.akubectl("apply", "-f", "-", input_=yaml.safe_dump(pool))
    name = pool_env.pool_name()
    await eventually(lambda: is_ready(kube_env.get("zpools", name)), 60, "the pool Ready")
    assert kube_env.get("zpools", name)["metadata"]["finalizers"] == ["nasd.io/cleanup"]

    await kube_env.akubectl("patch", "zpool", name, "--type=merge", "-p", json.dumps({"spec": {"node": "node-b"}}))
    await eventually(lambda: ("ZPool", name) not in daemon.reconciler.current, 20, "the pool released")
    for _ in range(3):
        await daemon.reconciler.run_pass()
    assert name in pool_env.daemon.all_pools()  # still there: moving is not deleting
    assert not [s.argv for s in daemon.runner.spawns if s.mutating and "destroy" in s.argv]
    assert ("ZPool", name) not in daemon.reconciler.store.known()  # forgotten: a restart does not bring it back


async def test_an_object_whose_pool_object_is_gone_keeps_its_data_until_it_is_deleted(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    pool = pool_env.pool_manifest()
    pool["spec"]["node"] = NODE
    dataset = pool_env.dataset_manifest("scratch", deletionPolicy="Destroy")
    await kube_env.akubectl("apply", "-f", "-", input_=yaml.safe_dump_all([pool, dataset]))
    await eventually(lambda: is_ready(kube_env.get("zdatasets", "scratch")), 60, "the dataset Ready")

    # a typo in spec.pool: the dataset belongs to no node now; its data must not go
    await kube_env.akubectl("patch", "zdataset", "scratch", "--type=merge", "-p", json.dumps({"spec": {"pool": "tnak"}}))
    status = await eventually(lambda: (ready(kube_env.get("zdatasets", "scratch")) or {}).get("reason") == "NoNode"
                              and ready(kube_env.get("zdatasets", "scratch")), 20, "NoNode")
    assert "kept as it was" in status["message"]
    for _ in range(3):
        await daemon.reconciler.run_pass()
    assert f"{pool_env.pool_name()}/scratch" in subprocess.run(["zfs", "list", "-H", "-o", "name"], capture_output=True,
                                                              text=True).stdout
    assert not [s.argv for s in daemon.runner.spawns if s.mutating and "destroy" in s.argv]


async def test_kinds_every_node_handles_report_per_node_without_overwriting_each_other(
        pool_env: PoolEnv, kube_env: KubeEnv, daemon: Nasd, tmp_path: Path) -> None:
    kube_env.api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b"}})
    b_env = PoolEnv(tmp_path / "node-b", pool_env.daemon)
    b_env.mount_root.mkdir(parents=True)
    async with serving(config(b_env, kube_env, node="node-b")) as node_b:
        kube_env.api.put_object(secret("alice-pw", "pw-1234"))
        await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))

        def both() -> dict | None:
            user = kube_env.get("nasusers", "alice")
            nodes = (user.get("status") or {}).get("nodes") or {}
            return user if {n: e.get("status") for n, e in nodes.items()} == {"node-a": "True", "node-b": "True"} \
                else None

        user = await eventually(both, 30, "alice Ready on both nodes")
        assert ready(user)["status"] == "True" and "ready on 2 node(s): node-a, node-b" in ready(user)["message"]
        writes = len(kube_env.mutations())
        await asyncio.sleep(2.0)
        assert [m for m in kube_env.mutations()[writes:] if "nasusers" in m[1]] == []  # no ping-pong

        # watch events that change nothing a node declares (here a Node's labels) run no pass on either node
        passes = (daemon.metrics.pass_count, node_b.metrics.pass_count)
        for i in range(3):
            kube_env.api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": "node-b", "labels": {"round": str(i)}}})
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)
        assert (daemon.metrics.pass_count, node_b.metrics.pass_count) == passes


async def test_in_host_mode_a_changed_secret_sets_the_new_smb_password(
        pool_env: PoolEnv, kube_env: KubeEnv, smb_env: Any, tmp_path: Path) -> None:
    """The host's supervised smbd (host mode stays available in a cluster): the password comes from the
    Secret, and a new value in the Secret is the new password without anything else changing."""
    cfg = config(pool_env, kube_env).model_dump(mode="json")
    cfg["plugins"]["smb"] = smb_env.settings()
    async with serving(Config.model_validate(cfg)) as nasd:
        kube_env.api.put_object(secret("alice-pw", "first-pw"))
        await kube_env.akubectl("apply", "-f", str(manifests(pool_env, tmp_path / "m")))
        await eventually(lambda: is_ready(kube_env.get("nasshares", "media")), 60, "the share Ready")
        assert kube_env.get("nasshares", "media")["status"]["unc"] == "\\\\127.0.0.1\\media"
        ok = await asyncio.to_thread(smb_env.smbclient, "media", "alice", "first-pw", "ls")
        assert ok.returncode == 0, ok.stdout + ok.stderr

        await idle(nasd)  # so that only the Secret's change can bring the next pass
        kube_env.api.put_object(secret("alice-pw", "second-pw"))

        async def logs_in(password: str) -> bool:
            return (await asyncio.to_thread(smb_env.smbclient, "media", "alice", password, "ls")).returncode == 0

        await eventually(lambda: logs_in("second-pw"), 20, "the new password")
        assert not await logs_in("first-pw")
        assert pod_objects(kube_env, "media") == (None, None, None)  # host mode: no pod


async def test_the_examples_folder_applied_with_kubectl_converges_and_is_deleted_through_the_finalizers(
        pool_env: PoolEnv, kube_env: KubeEnv, tmp_path: Path) -> None:
    """`kubectl apply -f examples/` (the demo's own manifests, with this test's pool name and files), the
    two steps a cluster needs beyond the demo (the pool's node; the demo user's password in a Secret rather
    than a host file), then `kubectl delete -f examples/`."""
    folder = tmp_path / "examples"
    folder.mkdir()
    pool, vault = pool_env.pool_name(), pool_env.pool_name("vault")  # (vault: examples/pool-mirror.yaml)
    for f in sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml")):
        text = f.read_text().replace("/var/lib/nasd/tank", str(Path(pool_env.vdev("tank")).parent / "tank"))
        text = text.replace("/var/lib/nasd/vault", str(Path(pool_env.vdev("vault")).parent / "vault"))
        text = text.replace("name: vault\n", f"name: {vault}\n")
        (folder / f.name).write_text(text.replace("name: tank\n", f"name: {pool}\n").replace("pool: tank\n",
                                                                                          f"pool: {pool}\n"))
    cfg = config(pool_env, kube_env).model_dump(mode="json")
    cfg["plugins"]["timemachine"] = {"mdns": "off"}  # nothing advertised on this machine's network
    async with serving(Config.model_validate(cfg)) as nasd:
        kube_env.api.put_object(secret("demo-pw", "demo-Passw0rd"))
        await kube_env.akubectl("apply", "-f", str(folder))
        for name in (pool, vault):
            await kube_env.akubectl("patch", "zpool", name, "--type=merge", "-p", json.dumps({"spec": {"node": NODE}}))
        await kube_env.akubectl("patch", "nasuser", "demo", "--type=merge", "-p", json.dumps(
            {"spec": {"passwordSecretRef": {"file": None, "name": "demo-pw", "key": "password"}}}))

        objects = [(d["kind"], d["metadata"]["name"]) for f in sorted(folder.glob("*.yaml"))
                   for d in yaml.safe_load_all(f.read_text()) if d]
        plurals = {"ZPool": "zpools", "ZDataset": "zdatasets", "NASShare": "nasshares", "NASDirectory": "nasdirectories",
                   "NASUser": "nasusers", "ZSnapshotSchedule": "zsnapshotschedules"}

        def not_ready() -> list[str]:
            return [f"{k}/{n}: {(ready(kube_env.get(plurals[k], n)) or {}).get('message', 'no status')}"
                    for k, n in objects if not is_ready(kube_env.get(plurals[k], n))]

        await eventually(lambda: not not_ready() or None, 90, "every example Ready")
        assert len(objects) == 10, objects
        listed = (await kube_env.akubectl("get", "nas")).stdout
        assert all(f"/{n} " in listed for _, n in objects), listed  # the category lists every kind
        for share in ("media", "backups"):
            assert all(pod_objects(kube_env, share)), share
        assert "fruit" in pod_objects(kube_env, "backups")[0]["data"]["0-smb.conf"]  # Time Machine in the pod

        await kube_env.akubectl("delete", "-f", str(folder), "--timeout=90s")
        for kind, name in objects:
            assert kube_env.get(plurals[kind], name) is None, (kind, name)
        assert pod_objects(kube_env, "media") == (None, None, None)
        assert pool in pool_env.daemon.all_pools()  # Retain: deleting the objects keeps the data
