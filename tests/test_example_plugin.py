"""The example third-party plugin (``examples/plugin-nojunk``, "Writing a plugin" in the README), installed by pip
into a fresh environment beside nasd, run by the real ``nasd serve`` with the real smbd: a share annotated
``nojunk.example.org/hide: "true"`` hides .DS_Store, Thumbs.db and desktop.ini from smbclient; a bad annotation
is a Condition that heals once fixed; uninstalled, the plugin leaves shares that still converge, plain again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fresh_venv import Venv, listed_plugins, make_venv, wheelhouse
from nasd_testing import serve

pytestmark = pytest.mark.zfs
PASSWORD = "s3cret-Alice"
ANNOTATION = "nojunk.example.org/hide"
ALICE = {"uid": 2001, "gid": 2001, "mode": "0770"}


@pytest.fixture
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    wheels = wheelhouse(tmp_path_factory.getbasetemp() / "wheelhouse")
    venv = make_venv(tmp_path_factory.mktemp("venv") / "nasd", wheels, "nasd", "nasd-zfs")
    venv.install("nasd-nojunk")  # as its users would: `pip install nasd-nojunk`
    return venv


def share(name: str, hide: str | None = None) -> dict[str, Any]:
    annotations = {ANNOTATION: hide} if hide is not None else {}
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"protocol": "smb", "dataset": name, "smb": {"validUsers": ["alice"]}}}


def manifests(pool_env, smb_env, folder: Path, bad: str) -> None:
    pool_env.write_manifests(folder, pool_env.pool_manifest(), *smb_env.local_users(alice=(2001, PASSWORD)),
                             *(pool_env.dataset_manifest(n, owner=ALICE) for n in ("docs", "plain", "bad")),
                             share("docs", "true"), share("plain"), share("bad", bad))


def ready_condition(server, name: str) -> dict[str, str]:
    item = server.cli("get", "nasshare", name, "-o", "json")
    if item.returncode != 0:
        return {}
    return next(c for c in json.loads(item.stdout)["status"].get("conditions", []) if c["type"] == "Ready")


def wait_ready(server, name: str, what: str = "") -> None:
    try:
        serve.poll(lambda: server.ready("nasshare", name), timeout=30, what=f"share {name} Ready{what}")
    except AssertionError as e:
        raise AssertionError(f"{e}; its Ready condition: {ready_condition(server, name)}") from None


def test_the_example_plugin_installs_with_pip_and_lists_its_distribution_and_hook(venv):
    assert "nasd-smb" in venv.distributions()  # pulled in by the plugin's declared dependency
    plugins = {p["name"]: p for p in json.loads(venv.nasd("plugins", "-o", "json").stdout)}
    assert (plugins["nojunk"]["distribution"], plugins["nojunk"]["hooks"]) == ("nasd-nojunk", ["smb_share_options"])
    # its hook is optional: with the SMB plugin blocked it still loads (and is never called)
    assert "nojunk" in listed_plugins(venv.nasd("plugins", "-o", "json", env={"NASD_DISABLED_PLUGINS": "smb"}))


def test_an_annotated_share_hides_desktop_junk_from_smb_clients_and_uninstalled_the_shares_still_converge(
        venv, pool_env, smb_env, tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "NASD", venv.nasd_bin)  # serving() starts the fresh environment's nasd
    folder = tmp_path / "manifests"
    manifests(pool_env, smb_env, folder, bad="yes please")
    mnt = pool_env.mount_root / pool_env.pool_name()
    (tmp_path / "junk").write_text("thumbnails\n")
    with serve.serving(pool_env, tmp_path, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                    "smb": smb_env.settings()}) as start:
        server = start(folder)
        for name in ("docs", "plain"):
            wait_ready(server, name)
        bad = serve.poll(lambda: (c := ready_condition(server, "bad")).get("reason") == "InvalidAnnotation" and c,
                         timeout=30, what="the bad annotation reported")
        assert bad["status"] == "False" and "'yes please' is neither \"true\" nor \"false\"" in bad["message"]

        # what a Mac left in a folder: invisible over SMB, and it does not keep the folder from being deleted
        (mnt / "docs" / "old").mkdir()
        (mnt / "docs" / "old" / ".DS_Store").write_bytes(b"Bud1")
        (mnt / "docs" / "old" / "kept.txt").write_text("kept\n")
        for path in ("old", "old/.DS_Store", "old/kept.txt"):
            os.chown(mnt / "docs" / path, 2001, 2001)  # (alice's, as if she had copied them there)
        listing = smb_env.smbclient("docs", "alice", PASSWORD, "ls old/*")
        assert "kept.txt" in listing.stdout and ".DS_Store" not in listing.stdout, listing.stdout
        removed = smb_env.smbclient("docs", "alice", PASSWORD, "del old/kept.txt; rmdir old")
        assert not (mnt / "docs" / "old").exists(), removed.stdout + removed.stderr
        # and what Windows would write is refused on the annotated share only
        put = smb_env.smbclient("docs", "alice", PASSWORD, "put junk Thumbs.db; put junk notes.txt", cwd=tmp_path)
        assert "NT_STATUS_" in put.stdout + put.stderr
        assert not (mnt / "docs" / "Thumbs.db").exists() and (mnt / "docs" / "notes.txt").exists()
        (mnt / "plain" / ".DS_Store").write_bytes(b"Bud1")
        plain = smb_env.smbclient("plain", "alice", PASSWORD, "put junk Thumbs.db; ls", cwd=tmp_path)
        assert plain.returncode == 0 and (mnt / "plain" / "Thumbs.db").exists(), plain.stdout
        assert ".DS_Store" in plain.stdout  # (Samba itself hides nothing of it)

        manifests(pool_env, smb_env, folder, bad="true")  # fixed: it heals by itself
        wait_ready(server, "bad", " once fixed")
        assert server.stop() == 0 and "Traceback" not in server.output()

        venv.uninstall("nasd-nojunk")
        assert "nojunk" not in listed_plugins(venv.nasd("plugins", "-o", "json"))
        again = start(folder)
        for name in ("docs", "plain", "bad"):
            wait_ready(again, name, " without the plugin")
        put = serve.poll(lambda: (r := smb_env.smbclient("docs", "alice", PASSWORD, "put junk Thumbs.db",
                                                         cwd=tmp_path)).returncode == 0 and r,
                         timeout=15, what="Thumbs.db accepted on docs without the plugin")
        assert (mnt / "docs" / "Thumbs.db").exists(), put.stdout
        assert again.stop() == 0 and "Traceback" not in again.output()
