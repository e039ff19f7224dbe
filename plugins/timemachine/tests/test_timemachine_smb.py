"""Time Machine shares with the real smbd and smbclient on zfs-fuse: named streams, the quota in the
disk-free answer, and the plain shares beside them unchanged for other clients."""

from __future__ import annotations

import re
from pathlib import Path
import subprocess

from nasd.models import parse_resource
from nasd_testing.passes import converge
from nasd_testing.smb import smb_conf_file

ALICE = "s3cret-Alice"
MAX = 256 << 20


def identities(smb_env) -> list[dict]:
    return smb_env.local_users(alice=(2001, ALICE))


def share(name: str, **smb) -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "smb", "dataset": name, "smb": {"validUsers": ["alice"], **smb}}}


def smb_conf(nasd) -> str:
    return smb_conf_file(nasd).read_text()


def section(conf: str, name: str) -> str:
    return conf.split(f"[{name}]", 1)[1].split("\n\n", 1)[0]


async def start(pool_env, smb_env, make_nasd, *docs):
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("backups"), pool_env.dataset_manifest("media"),
            *identities(smb_env)]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base, *docs)
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                          "smb": smb_env.settings()})
    await converge(nasd)
    for ds in ("backups", "media"):
        subprocess.run(["chown", "2001", nasd.reconciler.current[("ZDataset", ds)].status.mountpoint], check=True)
    return nasd, base


async def test_a_time_machine_share_keeps_named_streams_and_reports_its_quota_as_the_disk_size(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd,
                          share("backups", timeMachine={"enabled": True, "maxSize": "256Mi"}), share("media"))
    assert all(r.ready for r in nasd.reconciler.current.values()), {
        k: r.condition("Ready") for k, r in nasd.reconciler.current.items() if not r.ready}
    conf = smb_conf(nasd)
    backups = section(conf, "backups")
    for line in ("fruit:time machine = yes", "fruit:time machine max size = 256M", "fruit:metadata = stream",
                 "vfs objects = catia fruit streams_xattr acl_xattr xattr_tdb"):  # zfs-fuse has no xattrs
        assert line in backups, backups
    assert "fruit:model = MacSamba" in section(conf, "global")
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/backups", "refquota") == {"refquota": str(MAX)}

    (tmp_path / "info").write_bytes(b"AFP\x00" + bytes(56))
    (tmp_path / "data.txt").write_text("backup data\n")
    put = smb_env.smbclient("backups", "alice", ALICE, 'put data.txt; put info "data.txt:AFP_AfpInfo"; '
                            'put data.txt "data.txt:com.apple.metadata"', cwd=tmp_path)
    assert put.returncode == 0, put.stdout + put.stderr
    info = smb_env.smbclient("backups", "alice", ALICE, "allinfo data.txt")
    assert ":com.apple.metadata:$DATA" in info.stdout, info.stdout
    got = smb_env.smbclient("backups", "alice", ALICE, 'get "data.txt:com.apple.metadata" back.txt', cwd=tmp_path)
    assert got.returncode == 0 and (tmp_path / "back.txt").read_text() == "backup data\n"
    du = smb_env.smbclient("backups", "alice", ALICE, "du")
    m = re.search(r"(\d+) blocks of size (\d+)\. (\d+) blocks available", du.stdout)
    assert m, du.stdout
    total = int(m.group(1)) * int(m.group(2))
    assert 0.9 * MAX <= total <= MAX, (total, du.stdout)  # the quota, not the pool's size


async def test_every_share_gets_the_same_fruit_stack_and_a_plain_share_still_serves_windows_and_linux(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, base = await start(pool_env, smb_env, make_nasd,
                             share("backups", timeMachine={"enabled": True}), share("media"))
    media = section(smb_conf(nasd), "media")
    assert "vfs objects = catia fruit streams_xattr acl_xattr xattr_tdb" in media and "fruit:time machine" not in media
    (tmp_path / "a.txt").write_text("plain\n")
    put = smb_env.smbclient("media", "alice", ALICE, "put a.txt; get a.txt b.txt", cwd=tmp_path)
    assert put.returncode == 0 and (tmp_path / "b.txt").read_text() == "plain\n"
    assert smb_env.smbclient("media", None, None, "ls").returncode != 0  # still no guests

    # without a Time Machine share, fruit leaves every share and [global] again, and the quota stays (data)
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, share("media")]])
    await converge(nasd)
    conf = smb_conf(nasd)
    assert "fruit" not in conf and "[backups]" not in conf
    assert smb_env.smbclient("media", "alice", ALICE, "get a.txt c.txt", cwd=tmp_path).returncode == 0


async def browse_adisk(host: str) -> dict[str, str] | None:
    from nasd_timemachine.advertise import browse
    return (await browse(host, ["_adisk._tcp"], ["127.0.0.1"], timeout=2.0)).get("_adisk._tcp")


async def wait_for(predicate, nasd, seconds: float = 20.0):
    """Passes (as the daemon would run them when its advertiser asks) until ``predicate()`` holds."""
    import asyncio
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await nasd.reconciler.run_pass(ignore_backoff=True)
        if await predicate():
            return
        await asyncio.sleep(0.3)
    raise AssertionError("timed out")


async def test_time_machine_shares_are_advertised_over_mdns_with_the_exact_txt_and_follow_the_shares(
        private_network, pool_env, smb_env, make_nasd):
    from nasd_timemachine.advertise import share_uuid
    settings = {"mdns": "zeroconf", "interfaces": ["127.0.0.1"], "hostName": "nasbox"}
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("backups"), pool_env.dataset_manifest("laptops"),
            pool_env.dataset_manifest("media"), *identities(smb_env), share("media")]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base, share("backups", timeMachine={"enabled": True, "maxSize": "256Mi"}))
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                          "smb": smb_env.settings(), "timemachine": settings})
    backups = f"adVN=backups,adVF=0x82,adVU={share_uuid('nasbox', 'backups')}"
    laptops = f"adVN=laptops,adVF=0x82,adVU={share_uuid('nasbox', 'laptops')}"

    async def advertised() -> bool:
        c = nasd.reconciler.current.get(("NASShare", "backups"))
        return c is not None and c.condition("Advertised") is not None and c.condition("Advertised").status == "True"

    await wait_for(advertised, nasd)
    assert await browse_adisk("nasbox") == {"sys": "waMa=0,adVF=0x100", "dk0": backups}
    from nasd_timemachine.advertise import browse
    others = await browse("nasbox", ["_smb._tcp", "_device-info._tcp"], ["127.0.0.1"], timeout=2.0)
    assert others == {"_smb._tcp": {}, "_device-info._tcp": {"model": "MacSamba"}}
    status = nasd.reconciler.current[("NASShare", "backups")].status.timeMachine
    assert (status.advertisedAs, status.quota) == ("nasbox", MAX) and status.used is not None
    assert nasd.reconciler.current[("NASShare", "media")].condition("Advertised") is None  # not a TM share

    # a second share is added: re-advertised, smbd not restarted
    pid = smbd_pid(smb_env)
    assert pid > 0
    nasd.feed.replace("manifests", [parse_resource(d) for d in [
        *base, share("backups", timeMachine={"enabled": True}), share("laptops", timeMachine={"enabled": True})]])

    async def both() -> bool:
        return await browse_adisk("nasbox") == {"sys": "waMa=0,adVF=0x100", "dk0": backups, "dk1": laptops}

    await wait_for(both, nasd)
    assert smbd_pid(smb_env) == pid

    # and when no share is a Time Machine share any more, the records go, and so does what the share said
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, share("backups")]])

    async def gone() -> bool:
        return await browse_adisk("nasbox") is None

    await wait_for(gone, nasd)
    backups_now = nasd.reconciler.current[("NASShare", "backups")]
    assert backups_now.ready and backups_now.condition("Advertised") is None
    assert backups_now.status.timeMachine is None


def smbd_pid(smb_env) -> int:
    pids = list(smb_env.root.rglob("smbd.pid"))
    return int(pids[0].read_text().split()[0]) if pids else 0


async def test_per_user_datasets_bound_each_macs_backups_and_keep_them_private(
        pool_env, smb_env, make_nasd, tmp_path):
    bob = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASUser", "metadata": {"name": "bob"},
           "spec": {"directory": "local", "uid": 2002, "passwordSecretRef": {"file": smb_env.secret("bob", "s3cret-Bob")}}}
    per_user = share("backups", timeMachine={"enabled": True, "maxSize": "128Mi", "perUserDatasets": True})
    per_user["spec"]["smb"]["validUsers"] = ["alice", "bob"]
    nasd, _ = await start(pool_env, smb_env, make_nasd, bob, per_user, share("media"))
    await converge(nasd)
    pool = pool_env.pool_name()
    for user, uid in (("alice", 2001), ("bob", 2002)):
        ds = nasd.reconciler.current[("ZDataset", f"backups-{user}")]
        assert ds.ready and ds.status.name == f"{pool}/backups/{user}"
        assert pool_env.zfs_get(f"{pool}/backups/{user}", "refquota") == {"refquota": str(128 << 20)}
        st = Path(ds.status.mountpoint).stat()
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o700)
    assert f"path = {pool_env.mount_root}/{pool}/backups/%u" in section(smb_conf(nasd), "backups")
    assert pool_env.zfs_get(f"{pool}/backups", "refquota") == {"refquota": "0"}  # the bound is per user

    (tmp_path / "mine.txt").write_text("alice's backup\n")
    put = smb_env.smbclient("backups", "alice", ALICE, "put mine.txt", cwd=tmp_path)
    assert put.returncode == 0, put.stdout + put.stderr
    assert (pool_env.mount_root / pool / "backups" / "alice" / "mine.txt").read_text() == "alice's backup\n"
    du = smb_env.smbclient("backups", "alice", ALICE, "du")
    m = re.search(r"(\d+) blocks of size (\d+)\.", du.stdout)
    assert m and 0.9 * (128 << 20) <= int(m.group(1)) * int(m.group(2)) <= 128 << 20, du.stdout
    listing = smb_env.smbclient("backups", "bob", "s3cret-Bob", "ls")
    assert listing.returncode == 0 and "mine.txt" not in listing.stdout  # bob sees his own folder only

    # after a restart the per-user datasets are desired from the start: not forgotten for a pass
    again = await make_nasd([pool_env.root / "manifests"], plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    report = await again.reconciler.run_pass(ignore_backoff=True)
    assert report.deleted == [] and again.reconciler.current[("ZDataset", "backups-alice")].ready


async def test_with_avahi_running_the_records_go_through_its_service_folder(avahi, smb_env, make_nasd, pool_env):
    from nasd_timemachine.advertise import share_uuid
    settings = {"mdns": "auto", "interfaces": ["127.0.0.1"], "hostName": "nasbox"}
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("backups"), *identities(smb_env)]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base, share("backups", timeMachine={"enabled": True}))
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                          "smb": smb_env.settings(), "timemachine": settings})

    async def advertised() -> bool:
        c = nasd.reconciler.current.get(("NASShare", "backups"))
        return c is not None and c.condition("Advertised") is not None and c.condition("Advertised").status == "True"

    await wait_for(advertised, nasd)
    service = (avahi / "nasd-timemachine.service").read_text()
    assert "<txt-record>sys=waMa=0,adVF=0x100</txt-record>" in service
    assert f"<txt-record>dk0=adVN=backups,adVF=0x82,adVU={share_uuid('nasbox', 'backups')}</txt-record>" in service
    assert await browse_adisk("nasbox") == {
        "sys": "waMa=0,adVF=0x100", "dk0": f"adVN=backups,adVF=0x82,adVU={share_uuid('nasbox', 'backups')}"}

    nasd.feed.replace("manifests", [parse_resource(d) for d in base])

    async def gone() -> bool:
        return not (avahi / "nasd-timemachine.service").exists() and await browse_adisk("nasbox") is None

    await wait_for(gone, nasd)
