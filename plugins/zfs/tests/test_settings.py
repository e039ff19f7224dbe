"""The ZFS plugin's settings (``plugins.zfs``): read once, and a wrong one shows on every ZFS resource."""

from __future__ import annotations

import subprocess

import pytest

from nasd.errors import PermanentError
from nasd_zfs.settings import load_settings


def test_pools_mount_under_mnt_and_nothing_else_is_allowed_by_default():
    settings = load_settings({})
    assert settings.mountRoot == "/mnt" and settings.allowedMountpoints == []


@pytest.mark.parametrize("raw, says", [
    ({"mountRoot": "mnt"}, "mountRoot: must be an absolute path"),
    ({"allowedMountpoints": ["/srv", "srv/nas"]}, "allowedMountpoints: must be absolute paths (not srv/nas)"),
    ({"mountroot": "/mnt"}, "mountroot: unknown field"),
])
def test_a_relative_folder_or_a_misspelt_key_is_a_bad_setting_naming_it(raw, says):
    with pytest.raises(PermanentError) as e:
        load_settings(raw)
    assert e.value.reason == "BadSettings" and str(e.value).startswith("plugins.zfs: ") and says in str(e.value)


@pytest.mark.zfs
async def test_a_bad_setting_makes_the_pools_not_ready_saying_so_and_creates_nothing(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": "mnt"}})
    await nasd.reconciler.run_pass(ignore_backoff=True)
    ready = nasd.reconciler.current[("ZPool", pool_env.pool_name())].condition("Ready")
    assert ready.status == "False" and ready.reason == "BadSettings", ready
    assert "plugins.zfs: mountRoot: must be an absolute path" in ready.message
    listed = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True, check=False).stdout.split()
    assert pool_env.pool_name() not in listed
