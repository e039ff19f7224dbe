"""SMB shares and local users, proven with the real smbd and smbclient."""

from __future__ import annotations

import os


def identities(pool_env, smb_env, *, password="s3cret-Alice"):
    d = {"apiVersion": "nasd.io/v1alpha1"}
    return [
        d | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}},
        d | {"kind": "NASGroup", "metadata": {"name": "staff"}, "spec": {"directory": "local", "gid": 3001}},
        d | {"kind": "NASUser", "metadata": {"name": "alice"},
             "spec": {"directory": "local", "uid": 2001, "groups": ["staff"],
                      "passwordSecretRef": {"file": smb_env.secret("alice", password)}}},
        d | {"kind": "NASUser", "metadata": {"name": "bob"},
             "spec": {"directory": "local", "uid": 2002,
                      "passwordSecretRef": {"file": smb_env.secret("bob", "s3cret-Bob")}}},
    ]


def share(name, dataset, **smb):
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "smb", "dataset": dataset, "smb": smb}}


async def start(pool_env, smb_env, make_nasd, *docs):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    nasd = await make_nasd([folder], watch=True, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    for _ in range(4):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            break
    return nasd


def give(nasd, dataset: str, uid: int, gid: int, mode: int = 0o2770) -> str:
    """What an admin does once (nasd does not manage dataset permissions yet): owner, group, mode."""
    path = nasd.reconciler.current[("ZDataset", dataset)].status.mountpoint
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


async def test_a_valid_user_lists_writes_and_reads_and_owns_what_they_write(pool_env, smb_env, make_nasd, tmp_path):
    nasd = await start(pool_env, smb_env, make_nasd, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                       *identities(pool_env, smb_env), share("media", "media", validUsers=["alice"]))
    not_ready = {k: r.condition("Ready") for k, r in nasd.reconciler.current.items() if not r.ready}
    assert not not_ready, not_ready
    give(nasd, "media", 2001, 3001)
    (tmp_path / "hello.txt").write_text("hello over SMB\n")
    put = smb_env.smbclient("media", "alice", "s3cret-Alice", "put hello.txt; ls", cwd=tmp_path)
    assert put.returncode == 0, put.stdout + put.stderr
    assert "hello.txt" in put.stdout
    path = nasd.reconciler.current[("ZDataset", "media")].status.mountpoint
    assert os.stat(os.path.join(path, "hello.txt")).st_uid == 2001
    got = smb_env.smbclient("media", "alice", "s3cret-Alice", "get hello.txt back.txt", cwd=tmp_path)
    assert got.returncode == 0 and (tmp_path / "back.txt").read_text() == "hello over SMB\n"
    share_status = nasd.reconciler.current[("NASShare", "media")].status
    assert share_status.unc == "\\\\127.0.0.1\\media" and share_status.allowedUsers == ["alice"]


async def test_a_wrong_password_and_a_user_outside_valid_users_are_refused(pool_env, smb_env, make_nasd):
    await start(pool_env, smb_env, make_nasd, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                *identities(pool_env, smb_env), share("media", "media", validUsers=["alice"]))
    wrong = smb_env.smbclient("media", "alice", "nope", "ls")
    assert wrong.returncode != 0 and "NT_STATUS_LOGON_FAILURE" in wrong.stdout + wrong.stderr
    bob = smb_env.smbclient("media", "bob", "s3cret-Bob", "ls")
    assert bob.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in bob.stdout + bob.stderr
