"""The Time Machine plugin's settings (``plugins: {timemachine: ...}``), with the real smbd on zfs-fuse."""

from __future__ import annotations

import subprocess

from nasd_testing.passes import converge

ALICE = "s3cret-Alice"


def share(name: str, **smb) -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "smb", "dataset": name, "smb": {"validUsers": ["alice"], **smb}}}


async def test_a_bad_time_machine_setting_keeps_its_shares_not_ready_naming_it_and_the_other_shares_serve(
        pool_env, smb_env, make_nasd, tmp_path):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("backups"),
                             pool_env.dataset_manifest("media"), *smb_env.local_users(alice=(2001, ALICE)),
                             share("backups", timeMachine={"enabled": True}), share("media"))
    plugins = {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()}
    nasd = await make_nasd([folder], watch=True, plugins={**plugins, "timemachine": {"mdns": "bonjour"}})
    await converge(nasd)
    backups = nasd.reconciler.current[("NASShare", "backups")].condition("Ready")
    assert (backups.status, backups.reason) == ("False", "BadSettings"), backups.message
    assert backups.message.startswith("plugins.timemachine: mdns: ")
    assert nasd.reconciler.current[("NASShare", "media")].ready  # the plain share serves
    subprocess.run(["chown", "2001", nasd.reconciler.current[("ZDataset", "media")].status.mountpoint], check=True)
    (tmp_path / "a.txt").write_text("plain\n")
    assert smb_env.smbclient("media", "alice", ALICE, "put a.txt", cwd=tmp_path).returncode == 0

    # set right (settings are read at the start): the Time Machine share is served
    await nasd.stop()
    fixed = await make_nasd([folder], watch=True, plugins={**plugins, "timemachine": {"mdns": "off"}})
    await converge(fixed)
    assert fixed.reconciler.current[("NASShare", "backups")].ready
    assert smb_env.smbclient("backups", "alice", ALICE, "ls").returncode == 0
