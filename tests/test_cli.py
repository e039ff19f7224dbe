"""The ``nasd`` command line, run as the installed console script against real zfs-fuse.

The pytest process lives in a private mount namespace with its own zfs-fuse
(``zfs_daemon``); the ``nasd`` processes started here inherit it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from nasd_testing.serve import NASD, Server, clean_env, nasd, poll, serving

NOTHING_TO_DO = "# nothing to do: everything is as the manifests say"


def table(stdout: str) -> list[dict[str, str]]:
    """Parse a nasd table (header row, space-separated columns; the last column may contain spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = lines[0].split()
    return [dict(zip(header, line.split(None, len(header) - 1))) for line in lines[1:]]


def zfs_exists(name: str) -> bool:
    listed = subprocess.run(["zfs", "list", "-H", "-o", "name", name], capture_output=True, timeout=30)
    return listed.returncode == 0


def pools_with_prefix(prefix: str) -> list[str]:
    out = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return [p for p in out.split() if p.startswith(prefix)]


# -- one-shot: reconcile and plan -------------------------------------------------------------------


@pytest.mark.zfs
def test_reconcile_creates_the_pool_and_datasets_and_reports_each_ready(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(
        folder,
        pool_env.pool_manifest(),
        pool_env.dataset_manifest("media", properties={"compression": "gzip"}),
        pool_env.dataset_manifest("photos", path="media/photos", properties={"atime": "off"}),
    )
    config = pool_env.write_config()

    first = nasd("reconcile", "-f", folder, "--config", config)

    assert first.returncode == 0, first.stdout + first.stderr
    rows = table(first.stdout)
    assert [(r["KIND"], r["NAME"], r["READY"]) for r in rows] == [
        ("ZPool", pool, "True"), ("ZDataset", "media", "True"), ("ZDataset", "photos", "True"),
    ]
    assert pool_env.zfs_get(f"{pool}/media", "compression")["compression"] == "gzip"
    assert pool_env.zfs_get(f"{pool}/media/photos", "atime", "mountpoint") == {
        "atime": "off", "mountpoint": str(pool_env.mount_root / pool / "media" / "photos"),
    }
    assert (pool_env.state_dir / "resources.json").is_file(), "the config's stateDir is used"

    again = nasd("reconcile", "-f", folder, "--config", config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {r["READY"] for r in table(again.stdout)} == {"True"}

    planned = nasd("plan", "-f", folder, "--config", config)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.strip() == NOTHING_TO_DO


@pytest.mark.zfs
def test_reconcile_of_some_files_deletes_nothing_else_unless_asked_to_prune(pool_env, tmp_path):
    pool = pool_env.pool_name()
    config = pool_env.write_config()
    everything, part = tmp_path / "all", tmp_path / "part"
    pool_env.write_manifests(everything, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", deletionPolicy="Destroy"))
    assert nasd("reconcile", "-f", everything, "--config", config).returncode == 0
    pool_env.write_manifests(part, pool_env.pool_manifest())

    assert nasd("reconcile", "-f", part, "--config", config).returncode == 0
    assert zfs_exists(f"{pool}/media")

    planned = nasd("plan", "-f", part, "--config", config, "--prune")
    assert f"zfs destroy {pool}/media" in planned.stdout.splitlines()
    assert nasd("reconcile", "-f", part, "--config", config, "--prune").returncode == 0
    assert not zfs_exists(f"{pool}/media")


@pytest.mark.zfs
def test_plan_prints_the_exact_commands_and_changes_nothing(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    config = pool_env.write_config()
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"compression": "gzip"}))
    assert nasd("reconcile", "-f", folder, "--config", config).returncode == 0
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"compression": "lzjb"}),
                             pool_env.dataset_manifest("docs"))

    planned = nasd("plan", "-f", folder, "--config", config)

    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert f"zfs set compression=lzjb {pool}/media" in lines
    assert f"zfs create -o nasd.io:managed=true {pool}/docs" in lines
    assert NOTHING_TO_DO not in lines
    assert pool_env.zfs_get(f"{pool}/media", "compression")["compression"] == "gzip"
    assert not zfs_exists(f"{pool}/docs")


@pytest.mark.zfs
def test_plan_before_anything_exists_shows_every_create_and_runs_nothing(pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"atime": "off"}))

    planned = nasd("plan", "-f", folder, "--config", pool_env.write_config())

    assert planned.returncode == 0, planned.stderr
    assert any(line.startswith("zpool create ") and line.endswith(f"{pool} {pool_env.vdev('tank-0')}")
               for line in planned.stdout.splitlines()), planned.stdout
    assert f"zfs create -o nasd.io:managed=true -o atime=off {pool}/media" in planned.stdout.splitlines()
    assert pools_with_prefix(pool_env.prefix) == []
    assert not Path(pool_env.vdev("tank-0")).exists()


INVALID = {
    "mirror-with-one-device": (
        lambda env: [env.pool_manifest(vdev_type="mirror", devices=1)], "spec.vdevs[0]",
    ),
    "bad-compression-beside-a-valid-pool": (
        lambda env: [env.pool_manifest(), env.dataset_manifest("media", properties={"compression": "lz5"})],
        "spec.properties",
    ),
    "unknown-field": (lambda env: [env.pool_manifest(colour="red")], "spec.colour"),
}


@pytest.mark.zfs
@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_manifests_exit_2_naming_the_field_and_create_nothing(pool_env, tmp_path, case):
    docs, field = INVALID[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs(pool_env), sort_keys=False))

    result = nasd("reconcile", "-f", bad, "--config", pool_env.write_config())

    assert result.returncode == 2, result.stdout + result.stderr
    assert field in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr
    assert pools_with_prefix(pool_env.prefix) == []
    assert not Path(pool_env.vdev("tank-0")).exists()
    assert not pool_env.state_dir.exists()


def test_unreadable_input_exits_2_naming_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: ZPool\nspec: [unclosed\n")
    missing = tmp_path / "missing.yaml"

    for path, expected in ((broken, "not valid YAML at line"), (missing, "no such file or folder")):
        result = nasd("plan", "-f", path, "--state-dir", tmp_path / "state")
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{path}: " in result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.zfs
@pytest.mark.parametrize("config_position", ["after-the-command", "before-the-command"])
def test_a_resource_that_cannot_become_ready_makes_reconcile_exit_1_with_its_reason(
    pool_env, tmp_path, config_position
):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.dataset_manifest("orphan", pool="undeclared"))
    config = pool_env.write_config()

    if config_position == "after-the-command":
        result = nasd("reconcile", "-f", folder, "--config", config)
    else:
        result = nasd("--config", config, "reconcile", "-f", folder)

    assert result.returncode == 1, result.stdout + result.stderr
    [row] = table(result.stdout)
    assert (row["KIND"], row["NAME"], row["READY"]) == ("ZDataset", "orphan", "False")
    assert row["REASON"] == "PoolNotReady"
    assert pool_env.pool_name("undeclared") in row["MESSAGE"]
    assert "Traceback" not in result.stderr
    assert '"orphan"' in (pool_env.state_dir / "resources.json").read_text(), "the config's stateDir is used"


# -- plugins ---------------------------------------------------------------------------------------


def plugin_listing(stdout: str) -> dict[str, tuple[str, list[str]]]:
    """``name  distribution version`` lines, each followed by ``    hooks: a, b``."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith("    hooks: "):
            assert name is not None
            out[name] = (out[name][0], line.removeprefix("    hooks: ").split(", "))
        elif line.strip():
            name, rest = line.split("  ", 1)
            out[name] = (rest.strip(), [])
    return out


def test_plugins_lists_zfs_and_the_builtins_with_their_hooks():
    result = nasd("plugins")

    assert result.returncode == 0, result.stderr
    listing = plugin_listing(result.stdout)
    assert {"zfs", "manifests", "api-store"} <= set(listing)
    zfs_dist, zfs_hooks = listing["zfs"]
    assert zfs_dist.split()[0] == "nasd-zfs"
    assert {"startup", "observe", "plan_pool", "plan_dataset", "plan_absent"} <= set(zfs_hooks)
    for builtin in ("manifests", "api-store"):
        assert listing[builtin][0].startswith("nasd (built-in)")
        assert listing[builtin][1] == ["supply_desired_state"]


def test_plugins_json_matches_the_table():
    table_listing = plugin_listing(nasd("plugins").stdout)
    result = nasd("plugins", "-o", "json")
    assert result.returncode == 0, result.stderr
    infos = yaml.safe_load(result.stdout)
    assert {i["name"]: (f"{i['distribution']} {i['version']}", i["hooks"]) for i in infos} == table_listing


def test_a_plugin_disabled_by_environment_is_not_listed():
    result = nasd("plugins", NASD_DISABLED_PLUGINS="zfs")

    assert result.returncode == 0, result.stderr
    listing = plugin_listing(result.stdout)
    assert "zfs" not in listing
    assert {"manifests", "api-store"} <= set(listing)


# -- serve and the client commands -----------------------------------------------------------------


@pytest.fixture
def serve(pool_env, tmp_path) -> Iterator[Callable[[Path], Server]]:
    """Start ``nasd serve --manifests DIR --config CFG --socket SOCK``; stopped (SIGTERM) at teardown,
    before pool_env destroys the test's pools."""
    with serving(pool_env, tmp_path) as start:
        yield start


@pytest.mark.zfs
def test_serve_reconciles_the_manifest_folder_and_get_shows_ready_resources(pool_env, tmp_path, serve):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"))
    server = serve(folder)

    poll(lambda: server.ready("zdataset", "media"), what="zdataset media to be Ready")
    pools = server.cli("get", "zpool")
    media = server.cli("get", "zdataset", "media", "-o", "yaml")

    assert pools.returncode == 0, pools.stderr
    [row] = table(pools.stdout)
    assert (row["NAME"], row["READY"], row["HEALTH"]) == (pool, "True", "ONLINE")
    assert media.returncode == 0, media.stderr
    item = yaml.safe_load(media.stdout)
    assert item["kind"] == "ZDataset"
    assert item["spec"]["pool"] == pool
    assert item["status"]["mountpoint"] == str(pool_env.mount_root / pool / "media")
    assert zfs_exists(f"{pool}/media")


@pytest.mark.zfs
def test_serve_socket_is_0600_and_sigterm_exits_0_and_removes_it(pool_env, tmp_path, serve):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    server = serve(folder)
    poll(lambda: server.ready("zpool", pool_env.pool_name()), what="the pool to be Ready")

    mode = stat.S_IMODE(os.stat(server.socket).st_mode)
    assert stat.S_ISSOCK(os.stat(server.socket).st_mode)
    assert mode == 0o600, oct(mode)

    second = nasd("serve", "--manifests", folder, "--config", pool_env.write_config(), "--socket", server.socket,
                  timeout=30)
    assert second.returncode == 2 and "already serving on" in second.stderr  # no second reconciler

    assert server.stop() == 0, server.output()
    assert not server.socket.exists()
    assert "Traceback" not in server.output()


@pytest.mark.zfs
def test_apply_describe_and_delete_through_a_running_daemon(pool_env, tmp_path, serve):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    server = serve(folder)
    extra = tmp_path / "docs.yaml"
    extra.write_text(yaml.safe_dump(pool_env.dataset_manifest("docs", properties={"atime": "off"})))

    applied = server.cli("apply", "-f", extra)

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "zdataset/docs applied"
    item = poll(lambda: server.ready("zdataset", "docs"), what="zdataset docs to be Ready")
    assert item["status"]["mountpoint"] == str(pool_env.mount_root / pool / "docs")
    assert pool_env.zfs_get(f"{pool}/docs", "atime")["atime"] == "off"

    described = server.cli("describe", "zdataset", "docs")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Name:        docs" in text
    assert "Conditions:\n  Ready=True  Ready  (generation 1," in text
    assert f"mountpoint: {pool_env.mount_root / pool / 'docs'}" in text

    refused = server.cli("delete", "zpool", pool)
    assert refused.returncode == 1
    assert "declared by manifests" in refused.stderr

    for typo in ("docs?x", "docs#x", "docs/x", ".."):  # never another object than the one named
        wrong = server.cli("delete", "zdataset", typo)
        assert wrong.returncode == 1, wrong.stdout
        assert "Traceback" not in wrong.stderr
    assert server.ready("zdataset", "docs")

    deleted = server.cli("delete", "zdataset", "docs")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "zdataset/docs deleted"
    poll(lambda: server.cli("get", "zdataset", "docs").returncode == 1, what="zdataset docs to be gone")
    gone = server.cli("get", "zdataset", "docs")
    assert "not found" in gone.stderr
    assert "Traceback" not in gone.stderr
    assert zfs_exists(f"{pool}/docs"), "deletionPolicy Retain (the default) keeps the data"


@pytest.mark.zfs
def test_reconcile_is_refused_while_a_daemon_serves(pool_env, tmp_path, serve):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    server = serve(folder)
    refused = nasd("reconcile", "-f", folder, "--config", pool_env.write_config(socket=str(server.socket)))
    assert refused.returncode != 0
    assert "nasd apply -f" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.zfs
def test_editing_a_manifest_file_converges_while_serving(pool_env, tmp_path, serve):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"compression": "gzip"}))
    server = serve(folder)
    poll(lambda: server.ready("zdataset", "media"), what="zdataset media to be Ready")
    assert pool_env.zfs_get(f"{pool}/media", "compression")["compression"] == "gzip"

    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"compression": "lzjb"}))

    poll(lambda: pool_env.zfs_get(f"{pool}/media", "compression")["compression"] == "lzjb", timeout=10,
         what="compression=lzjb on the dataset")
    item = poll(lambda: (i := server.ready("zdataset", "media")) and i["metadata"]["generation"] == 2 and i,
                what="generation 2 to be Ready")
    assert item["spec"]["properties"] == {"compression": "lzjb"}


def test_get_without_a_daemon_exits_1_with_a_hint(tmp_path):
    result = nasd("get", "zpool", "--socket", tmp_path / "absent.sock", timeout=30)

    assert result.returncode == 1
    assert "cannot reach nasd" in result.stderr
    assert "Traceback" not in result.stderr


def test_listen_without_a_token_file_exits_2_with_a_message(tmp_path):
    sock = tmp_path / "nasd.sock"

    result = nasd("serve", "--listen", "127.0.0.1:0", "--socket", sock, "--state-dir", tmp_path / "state",
                  timeout=30)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "--listen needs --token-file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not sock.exists()


def test_serve_over_tcp_needs_the_bearer_token_except_for_healthz(tmp_path):
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("t0ken-" + "x" * 20 + "\n")
    token.chmod(0o600)
    proc = subprocess.Popen([NASD, "serve", "--listen", f"127.0.0.1:{port}", "--token-file", str(token),
                             "--socket", str(tmp_path / "nasd.sock"), "--state-dir", str(tmp_path / "state")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    url = f"http://127.0.0.1:{port}"

    def status(path: str, auth: str | None = None) -> int:
        request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {auth}"} if auth else {})
        try:
            return urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    try:
        poll(lambda: status("/healthz") == 200, timeout=20, what="the TCP API")
        assert status("/apis/nasd.io/v1alpha1/zpools") == 401
        assert status("/apis/nasd.io/v1alpha1/zpools", "wrong") == 401
        assert status("/apis/nasd.io/v1alpha1/zpools", token.read_text().strip()) == 200
    finally:
        proc.terminate()
        proc.wait(10)
