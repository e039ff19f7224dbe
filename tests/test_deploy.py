"""The Kubernetes deployment in deploy/: valid objects, a DaemonSet that matches what the daemon needs,
a configuration nasd accepts, and RBAC that grants exactly what the watcher plugin says it uses."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from aiohttp import web

from nasd.config import DEFAULT_SOCKET, Config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFEST_FILES = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
NAMESPACE = "nasd-system"
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "nasd", "namespace": NAMESPACE}
CONFIG_PATH = "/etc/nasd/config.yaml"


def _objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _all_objects() -> list[dict[str, Any]]:
    return [obj for path in MANIFEST_FILES for obj in _objects(path)]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in _all_objects()
             if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/, found {len(found)}"
    return found[0]


def _daemonset() -> dict[str, Any]:
    return _one("DaemonSet", "nasd")


def _pod_spec() -> dict[str, Any]:
    return _daemonset()["spec"]["template"]["spec"]


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert [c["name"] for c in containers] == ["nasd"]
    return containers[0]


def _volume_mount(mount_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's mount at mount_path and the pod volume it mounts."""
    mounts = [m for m in _container().get("volumeMounts", []) if m["mountPath"] == mount_path]
    assert len(mounts) == 1, f"the nasd container should mount one volume at {mount_path}"
    volumes = [v for v in _pod_spec().get("volumes", []) if v["name"] == mounts[0]["name"]]
    assert len(volumes) == 1, f"no pod volume named {mounts[0]['name']!r}"
    return mounts[0], volumes[0]


def _config_map() -> dict[str, Any]:
    return _one("ConfigMap", "nasd-config")


def _config_data() -> dict[str, Any]:
    return yaml.safe_load(_config_map()["data"]["config.yaml"])


# -- every object is valid Kubernetes ----------------------------------------------------------------


def test_deploy_holds_the_namespace_rbac_config_and_daemonset_files():
    expected = {"namespace.yaml", "rbac.yaml", "config.yaml", "daemonset.yaml"}
    assert {p.name for p in MANIFEST_FILES} >= expected
    for path in MANIFEST_FILES:
        assert _objects(path), f"{path.name} holds no object"


@pytest.mark.parametrize(
    "obj", _all_objects(), ids=lambda o: f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"
)
def test_every_object_in_deploy_validates_strictly_against_kubernetes_1_32(obj):
    try:
        version = kubernetes_validate.validate(obj, "1.32", strict=True)
    except kubernetes_validate.ValidationError as e:
        error = f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at .{'.'.join(map(str, e.path))}"
    else:
        assert version == "1.32"
        return
    pytest.fail(error)  # outside the except: without the whole schema in the report


def test_every_namespaced_object_is_in_nasd_system_except_the_events_role_and_binding_in_default():
    for obj in _all_objects():
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in meta, f"{kind}/{meta['name']} is cluster-scoped"
        elif kind in ("Role", "RoleBinding") and meta.get("namespace") == "default":
            if kind == "Role":
                events = {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
                assert obj["rules"] == [events]
        else:
            assert meta.get("namespace") == NAMESPACE, f"{kind}/{meta['name']} is not in {NAMESPACE}"
    assert _one("Namespace")["metadata"]["name"] == NAMESPACE


# -- the DaemonSet -----------------------------------------------------------------------------------


def test_daemonset_runs_nasd_serve_with_the_mounted_config_file():
    container = _container()
    command = container.get("command", []) + container.get("args", [])
    assert command == ["nasd", "serve", "--config", CONFIG_PATH]


def test_daemonset_mounts_the_nasd_config_configmap_at_etc_nasd_config_yaml():
    container = _container()
    direct = [m for m in container["volumeMounts"] if m["mountPath"] == CONFIG_PATH]
    if direct:  # the file itself, through subPath
        mount, volume = _volume_mount(CONFIG_PATH)
        key = mount.get("subPath")
        assert key is not None, "a ConfigMap mounted at a file path needs subPath"
        path_in_volume = key
    else:  # the folder, holding the key config.yaml
        mount, volume = _volume_mount(str(Path(CONFIG_PATH).parent))
        path_in_volume = Path(CONFIG_PATH).name
    config_map = volume.get("configMap")
    assert config_map is not None and config_map["name"] == _config_map()["metadata"]["name"]
    items = {i["path"]: i["key"] for i in config_map.get("items", [])}
    key = items.get(path_in_volume, path_in_volume if not items else None)
    assert key == "config.yaml" and key in _config_map()["data"]
    assert mount.get("readOnly") is True


def test_daemonset_container_is_privileged_on_the_host_network():
    assert _container()["securityContext"]["privileged"] is True
    assert _pod_spec()["hostNetwork"] is True
    assert _pod_spec().get("dnsPolicy") == "ClusterFirstWithHostNet"  # in-cluster DNS despite hostNetwork


def test_daemonset_learns_its_node_and_namespace_from_the_downward_api():
    env = {e["name"]: e for e in _container()["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NASD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_daemonset_runs_as_the_nasd_service_account_of_the_rbac():
    assert _pod_spec()["serviceAccountName"] == "nasd"
    assert _pod_spec().get("automountServiceAccountToken", True) is True
    account = _one("ServiceAccount", "nasd")
    assert account["metadata"]["namespace"] == _daemonset()["metadata"]["namespace"] == NAMESPACE


def test_daemonset_mounts_the_pool_root_mnt_with_bidirectional_propagation():
    mount, volume = _volume_mount("/mnt")
    assert mount["mountPropagation"] == "Bidirectional"
    assert volume["hostPath"]["path"] == "/mnt"


@pytest.mark.parametrize("path", ["/dev", "/etc/exports.d", "/var/lib/nfs", "/var/lib/nasd"])
def test_daemonset_mounts_the_host_path_at_the_same_path(path):
    mount, volume = _volume_mount(path)
    assert volume["hostPath"]["path"] == path
    assert not mount.get("readOnly"), f"nasd writes below {path}"


def test_daemonset_keeps_its_state_dir_on_the_host_so_status_survives_pod_restarts():
    state_dir = str(Config.model_validate(_config_data()).stateDir)
    _, volume = _volume_mount(state_dir)
    assert volume["hostPath"]["path"] == state_dir


def test_daemonset_runs_only_on_nodes_labelled_for_storage_whatever_their_taints():
    pod = _pod_spec()
    assert pod["nodeSelector"] == {"nasd.io/storage": "true"}
    assert {"operator": "Exists"} in pod.get("tolerations", [])


def test_daemonset_pool_mount_root_matches_the_zfs_plugin_mount_root():
    mount_root = _config_data()["plugins"].get("zfs", {}).get("mountRoot", "/mnt")
    mount, _ = _volume_mount(mount_root)
    assert mount["mountPropagation"] == "Bidirectional"


def test_daemonset_image_is_the_smb_share_pod_image():
    assert _config_data()["plugins"]["smb"]["podImage"] == _container()["image"]


def test_daemonset_asks_for_modest_resources():
    requests = _container()["resources"]["requests"]
    assert set(requests) == {"cpu", "memory"}
    assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) <= 250
    assert requests["memory"].endswith("Mi") and int(requests["memory"][:-2]) <= 512


def _liveness_script(socket_path: str) -> list[str]:
    command = _container()["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"] and len(command) == 3
    assert str(DEFAULT_SOCKET) in command[2], "the probe must ask the socket the daemon serves on"
    assert "socket" not in _config_data(), "the probe assumes the default socket"
    return [sys.executable, "-c", command[2].replace(str(DEFAULT_SOCKET), socket_path)]


async def _probe_against(status: int | None) -> int:
    """Run the liveness probe against a unix-socket server whose /healthz answers status (None: no server)."""
    folder = tempfile.mkdtemp(prefix="nasd-probe-")
    sock = f"{folder}/nasd.sock"
    runner = None
    if status is not None:
        async def healthz(request: web.Request) -> web.Response:
            return web.Response(status=status, text="ok\n")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, sock).start()
    try:
        proc = await asyncio.create_subprocess_exec(*_liveness_script(sock),
                                                    stderr=asyncio.subprocess.DEVNULL)
        return await asyncio.wait_for(proc.wait(), 20)
    finally:
        if runner is not None:
            await runner.cleanup()
        Path(sock).unlink(missing_ok=True)
        Path(folder).rmdir()


async def test_liveness_probe_passes_when_the_api_socket_answers_healthz_200():
    assert await _probe_against(200) == 0


async def test_liveness_probe_fails_when_healthz_fails_or_nothing_listens():
    assert await _probe_against(500) != 0
    assert await _probe_against(None) != 0


# -- the configuration -------------------------------------------------------------------------------


def test_config_map_holds_a_configuration_nasd_accepts():
    config = Config.model_validate(_config_data())
    assert str(config.stateDir) == "/var/lib/nasd"
    assert config.manifests == []  # resources come from the Kubernetes API


def test_config_enables_the_kubernetes_plugin_smb_in_pod_mode_on_node_ports_and_nfs():
    plugins = Config.model_validate(_config_data()).plugins
    assert plugins["kubernetes"] == {}
    assert plugins["smb"]["mode"] == "pod" and plugins["smb"]["serviceType"] == "NodePort"
    assert plugins["nfs"] == {}


def test_config_nfs_settings_are_accepted_by_the_nfs_plugin():
    from nasd_nfs.settings import load_settings

    load_settings(_config_data()["plugins"]["nfs"])


def test_config_kubernetes_settings_are_accepted_by_the_kubernetes_plugin(monkeypatch):
    _permissions_module()  # puts the plugin on sys.path when it is not installed
    try:
        from nasd_kubernetes.settings import load_settings
    except ImportError:
        pytest.skip("the Kubernetes plugin has no settings module yet")
    monkeypatch.setenv("NODE_NAME", "node-1")
    monkeypatch.setenv("NASD_NAMESPACE", NAMESPACE)
    settings = load_settings(_config_data()["plugins"]["kubernetes"])
    assert (settings.nodeName, settings.namespace) == ("node-1", NAMESPACE)
    assert settings.eventsNamespace == "default"  # where rbac.yaml lets it write Events


def test_config_smb_settings_are_accepted_by_the_smb_plugin():
    from nasd_smb.settings import SMBSettings

    modes = SMBSettings.model_fields["mode"].annotation.__args__
    if "pod" not in modes:
        pytest.skip(f"the SMB plugin has no mode: pod yet (modes: {', '.join(modes)})")
    SMBSettings.model_validate(_config_data()["plugins"]["smb"])


# -- RBAC --------------------------------------------------------------------------------------------


def _permissions_module() -> Any:
    try:
        return importlib.import_module("nasd_kubernetes.permissions")
    except ImportError:
        sys.path.insert(0, str(ROOT / "plugins" / "kubernetes" / "src"))
        return importlib.import_module("nasd_kubernetes.permissions")


Grant = tuple[str, str, str, "str | None"]  # group, resource, verb, namespace (None: cluster-wide)


def _required() -> set[Grant]:
    permissions = _permissions_module()
    required: set[Grant] = set()
    for p in permissions.REQUIRED:
        namespace = NAMESPACE if p.namespace == "NASD_NAMESPACE" else p.namespace
        required |= {(p.group, p.resource, verb, namespace) for verb in p.verbs}
    return required


def _rules_by_role() -> dict[tuple[str, str | None, str], list[dict[str, Any]]]:
    return {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules", [])
        for o in _all_objects() if o["kind"] in ("ClusterRole", "Role")
    }


def _bindings() -> list[dict[str, Any]]:
    return [o for o in _all_objects() if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]


def _granted() -> set[Grant]:
    """What the RBAC objects grant the nasd ServiceAccount, one (group, resource, verb, namespace) each."""
    roles = _rules_by_role()
    granted: set[Grant] = set()
    for binding in _bindings():
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        key = (ref["kind"], None if ref["kind"] == "ClusterRole" else namespace, ref["name"])
        assert key in roles, f"{binding['kind']}/{binding['metadata']['name']} binds {ref}: not in deploy/"
        for rule in roles[key]:
            granted |= {(g, r, v, namespace) for g in rule["apiGroups"] for r in rule["resources"]
                        for v in rule["verbs"]}
    return granted


def test_permissions_list_covers_every_nasd_kind_and_its_status():
    crds = [yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*.yaml")]
    plurals = {crd["spec"]["names"]["plural"] for crd in crds}
    assert len(plurals) == 8
    required = _required()
    for plural in plurals:
        assert {v for g, r, v, n in required if (g, r, n) == ("nasd.io", plural, None)} == {
            "get", "list", "watch", "patch", "update"}
        assert {v for g, r, v, n in required if (g, r, n) == ("nasd.io", f"{plural}/status", None)} == {
            "get", "patch", "update"}


def test_rbac_binds_only_the_nasd_service_account():
    assert _bindings()
    for binding in _bindings():
        assert binding["subjects"] == [SERVICE_ACCOUNT], binding["metadata"]["name"]
        assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"


def test_rbac_grants_every_permission_the_kubernetes_plugin_requires():
    missing = _required() - _granted()
    assert not missing, f"deploy/rbac.yaml lacks: {sorted(missing, key=str)}"


def test_rbac_grants_nothing_beyond_what_the_kubernetes_plugin_requires():
    extra = _granted() - _required()
    assert not extra, f"deploy/rbac.yaml grants more than permissions.REQUIRED: {sorted(extra, key=str)}"


def test_rbac_rules_have_no_wildcards_resource_names_urls_or_aggregation():
    for (kind, namespace, name), rules in _rules_by_role().items():
        for rule in rules:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, f"{kind}/{name}: {rule}"
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in value for value in rule[field]), f"{kind}/{name}: {field} {rule[field]}"
    for o in _all_objects():
        assert "aggregationRule" not in o, o["metadata"]["name"]
    for group, resource, verb, namespace in _required():
        assert "*" not in group + resource + verb


def test_secrets_are_readable_only_in_the_nasd_namespace():
    for grants in (_granted(), _required()):
        secrets = {(v, n) for g, r, v, n in grants if (g, r) == ("", "secrets")}
        assert secrets == {("get", NAMESPACE), ("list", NAMESPACE), ("watch", NAMESPACE)}


def test_nothing_writes_core_resources_cluster_wide():
    writes = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}
    for grants in (_granted(), _required()):
        cluster_core = {(r, v) for g, r, v, n in grants if g == "" and n is None}
        assert cluster_core == {("nodes", "get"), ("nodes", "list"), ("nodes", "watch")}
        assert not {(r, v) for r, v in cluster_core if v in writes}


def test_events_are_written_only_in_the_default_namespace():
    for grants in (_granted(), _required()):
        events = {(v, n) for g, r, v, n in grants if r == "events"}
        assert events == {("create", "default"), ("patch", "default")}


# -- kustomize ---------------------------------------------------------------------------------------


def test_kustomization_lists_every_yaml_file_in_deploy_and_nothing_else():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in MANIFEST_FILES}


# -- the walkthrough ---------------------------------------------------------------------------------


def test_walkthrough_manifests_are_resources_nasd_accepts():
    from nasd.models import parse_resource

    text = (DEPLOY / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]
    resources = [parse_resource(doc, "deploy/README.md") for block in blocks
                 for doc in yaml.safe_load_all(block) if doc is not None]
    kinds = {r.kind for r in resources}
    assert {"ZPool", "ZDataset", "NASUser", "NASShare"} <= kinds
    pool = next(r for r in resources if r.kind == "ZPool")
    assert pool.spec.node, "the walkthrough's pool names its node"
    user = next(r for r in resources if r.kind == "NASUser")
    assert user.spec.passwordSecretRef is not None and user.spec.passwordSecretRef.name is not None
