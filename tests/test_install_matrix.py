"""Every feature is a distribution of its own: installed alone or with some others, nasd lists exactly those
plugins and converges what they serve against the real zfs-fuse, exportfs and smbd, and says NoPlugin (no
traceback) for what none of them serves.

Each subset is a fresh virtual environment filled from wheels, offline (see ``fresh_venv``): the core alone;
+zfs; +zfs+nfs; +zfs+nfs+snapshots; +zfs+smb+timemachine; all. With every plugin installed, each is blocked in
turn (``NASD_DISABLED_PLUGINS``) and the others still converge. (``tests/test_plugins.py`` checks ``nasd
plugins`` with each plugin blocked in this environment.)
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from fresh_venv import Venv, Wheelhouse, listed_plugins, make_venv, outcomes, wheelhouse
from nasd_testing import serve

BUILTINS = {"manifests", "api-store"}
FEATURES = ("zfs", "nfs", "smb", "snapshots", "timemachine", "kubernetes")
SUBSETS: dict[str, tuple[str, ...]] = {
    "core": (),
    "zfs": ("zfs",),
    "zfs+nfs": ("zfs", "nfs"),
    "zfs+nfs+snapshots": ("zfs", "nfs", "snapshots"),
    "zfs+smb+timemachine": ("zfs", "smb", "timemachine"),
    "all": FEATURES,
}
V = {"apiVersion": "nasd.io/v1alpha1"}
PASSWORD = "s3cret-Alice"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    return wheelhouse(tmp_path_factory.getbasetemp() / "wheelhouse")


@pytest.fixture(scope="module")
def venvs(wheels: Wheelhouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Venv]:
    """One environment per subset, made side by side."""
    root = tmp_path_factory.mktemp("venvs")
    with ThreadPoolExecutor(max_workers=2) as pool:  # (as many as the machine has cores)
        made = {name: pool.submit(make_venv, root / name.replace("+", "-"), wheels, "nasd",
                                  *(f"nasd-{p}" for p in plugins))
                for name, plugins in SUBSETS.items()}
        return {name: future.result() for name, future in made.items()}


@pytest.mark.parametrize("subset", SUBSETS)
def test_nasd_plugins_lists_exactly_the_installed_plugins_with_their_distributions(venvs, subset):
    venv = venvs[subset]
    expected = {p: f"nasd-{p}" for p in SUBSETS[subset]} | {p: "nasd (built-in)" for p in BUILTINS}
    assert listed_plugins(venv.nasd("plugins", "-o", "json")) == expected
    ours = {d for d in venv.distributions() if d.startswith("nasd")}
    assert ours == {"nasd", *(f"nasd-{p}" for p in SUBSETS[subset])}  # (timemachine's nasd-smb is in its subset)


# -- what each subset converges ---------------------------------------------------------------------------------


def reconcile(venv: Venv, config: Path, folder: Path, **env: str) -> tuple[int, dict[tuple[str, str], tuple[str, str]]]:
    result = venv.nasd("--config", config, "reconcile", "-f", folder, "-o", "json", env=env)
    return result.returncode, outcomes(result)


def share(name: str, protocol: str, dataset: str, **spec: Any) -> dict[str, Any]:
    return V | {"kind": "NASShare", "metadata": {"name": name}, "spec": {"protocol": protocol, "dataset": dataset,
                                                                          protocol: spec}}


def nfs_share(dataset: str) -> dict[str, Any]:
    return share(f"{dataset}-nfs", "nfs", dataset, fsid=7, clients=[{"hosts": ["10.0.0.0/8"]}])


def schedule(dataset: str) -> dict[str, Any]:
    return V | {"kind": "ZSnapshotSchedule", "metadata": {"name": f"{dataset}-often"},
                "spec": {"datasets": [dataset], "schedule": {"interval": "1m"}}}


def snapshots(pool_env, dataset: str) -> list[str]:
    out = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r",
                          f"{pool_env.pool_name()}/{dataset}"], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_core_alone_says_no_plugin_serves_each_resource_and_changes_nothing(venvs, tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    vdev = tmp_path / "tank.img"
    (folder / "all.yaml").write_text(yaml.safe_dump_all([
        V | {"kind": "ZPool", "metadata": {"name": "tank"},
             "spec": {"vdevs": [{"type": "stripe", "devices": [str(vdev)]}], "files": {str(vdev): "256Mi"}}},
        V | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}}]))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"stateDir": str(tmp_path / "state")}))
    code, got = reconcile(venvs["core"], tmp_path / "config.yaml", folder)
    assert code == 1
    assert got == {("ZPool", "tank"): ("False", "NoPlugin"), ("NASDirectory", "local"): ("False", "NoPlugin")}
    assert not vdev.exists()


@pytest.mark.zfs
def test_with_zfs_a_pool_and_its_dataset_converge(venvs, pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"))
    code, got = reconcile(venvs["zfs"], pool_env.write_config(), folder)
    assert (code, set(got.values())) == (0, {("True", "Ready")}), got
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/media", "mounted") == {"mounted": "yes"}


@pytest.mark.zfs
def test_with_zfs_and_nfs_an_nfs_share_is_exported(venvs, pool_env, nfs_exports, tmp_path):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"), nfs_share("media"))
    config = pool_env.write_config(plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                            "nfs": nfs_exports.settings()})
    code, got = reconcile(venvs["zfs+nfs"], config, folder)
    assert (code, set(got.values())) == (0, {("True", "Ready")}), got
    assert nfs_exports.exported() == {str(pool_env.mount_root / pool_env.pool_name() / "media"): {"10.0.0.0/8"}}


@pytest.mark.zfs
def test_with_zfs_nfs_and_snapshots_a_schedule_takes_its_first_snapshot(venvs, pool_env, nfs_exports, tmp_path):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"), nfs_share("media"),
                             schedule("media"))
    config = pool_env.write_config(plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                            "nfs": nfs_exports.settings()})
    code, got = reconcile(venvs["zfs+nfs+snapshots"], config, folder)
    assert (code, set(got.values())) == (0, {("True", "Ready")}), got
    assert len(snapshots(pool_env, "media")) == 1
    assert len(nfs_exports.exported()) == 1


@pytest.mark.zfs
def test_with_zfs_smb_and_timemachine_a_time_machine_share_serves_smbclient(venvs, pool_env, smb_env, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setattr(serve, "NASD", venvs["zfs+smb+timemachine"].nasd_bin)  # serving() starts this nasd
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("backups", owner={"uid": 2001, "gid": 2001, "mode": "0770"}),
                             *smb_env.local_users(alice=(2001, PASSWORD)),
                             share("backups", "smb", "backups", validUsers=["alice"],
                                   timeMachine={"enabled": True, "maxSize": "128Mi"}))
    plugins = {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings(),
               "timemachine": {"mdns": "off"}}
    with serve.serving(pool_env, tmp_path, plugins=plugins) as start:
        server = start(folder)
        item = serve.poll(lambda: server.ready("nasshare", "backups"), timeout=60, what="the share Ready")
        assert "appleExtensions" in item["status"]["clientFeatures"]  # the Time Machine plugin's fruit
        assert item["status"]["timeMachine"]["quota"] == 128 << 20
        (tmp_path / "backup.txt").write_text("a backup\n")
        put = serve.poll(lambda: (r := smb_env.smbclient("backups", "alice", PASSWORD, "put backup.txt; ls",
                                                         cwd=tmp_path)).returncode == 0 and r,
                         timeout=15, what="smbclient put")
        assert "backup.txt" in put.stdout
        assert server.stop() == 0 and "Traceback" not in server.output()


# -- everything installed, each plugin blocked in turn ----------------------------------------------------------


def everything(pool_env, smb_env) -> list[dict[str, Any]]:
    return [pool_env.pool_manifest(), pool_env.dataset_manifest("media"), pool_env.dataset_manifest("backups"),
            *smb_env.local_users(alice=(2001, PASSWORD)), nfs_share("media"), schedule("media"),
            share("backups", "smb", "backups", validUsers=["alice"], timeMachine={"enabled": True})]


#: what the resources of ``everything`` say with one plugin blocked (the others: Ready): what the blocked plugin
#: would serve, NoPlugin; what depends on it, that its dependency is not Ready
BLOCKED: dict[str, dict[tuple[str, str], tuple[str, str]]] = {
    "": {},
    "zfs": {("ZPool", "tank"): ("False", "NoPlugin"), ("ZDataset", "media"): ("False", "PoolNotReady"),
            ("ZDataset", "backups"): ("False", "PoolNotReady"), ("NASShare", "media-nfs"): ("False", "DatasetNotReady"),
            ("NASShare", "backups"): ("False", "DatasetNotReady"),
            ("ZSnapshotSchedule", "media-often"): ("False", "DatasetNotReady")},
    "nfs": {("NASShare", "media-nfs"): ("False", "NoPlugin")},
    "smb": {("NASDirectory", "local"): ("False", "NoPlugin"), ("NASUser", "alice"): ("False", "DirectoryNotReady"),
            ("NASShare", "backups"): ("False", "UserNotReady")},
    "snapshots": {("ZSnapshotSchedule", "media-often"): ("False", "NoPlugin")},
    # (served as a plain share, and it says why it is not a Time Machine one)
    "timemachine": {("NASShare", "backups"): ("False", "TimeMachineNotInstalled")},
    "kubernetes": {},
}


@pytest.mark.zfs
@pytest.mark.parametrize("blocked", BLOCKED, ids=[b or "none" for b in BLOCKED])
def test_with_every_plugin_installed_and_one_blocked_the_others_converge(venvs, pool_env, nfs_exports, smb_env,
                                                                         tmp_path, blocked):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, *everything(pool_env, smb_env))
    config = pool_env.write_config(plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                            "nfs": nfs_exports.settings(), "smb": smb_env.settings(),
                                            "timemachine": {"mdns": "off"}})
    code, got = reconcile(venvs["all"], config, folder, **({"NASD_DISABLED_PLUGINS": blocked} if blocked else {}))
    pool = pool_env.pool_name()
    expected = {(kind, pool if kind == "ZPool" else name): outcome
                for (kind, name), outcome in BLOCKED[blocked].items()}
    assert got == {key: expected.get(key, ("True", "Ready")) for key in got}
    assert len(got) == len(everything(pool_env, smb_env))
    assert code == (1 if expected else 0)
