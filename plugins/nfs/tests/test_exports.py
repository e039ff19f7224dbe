"""NFS shares against the real exportfs (it parses, checks and records the exports; the kernel's
nfsd itself runs in the VM tier) on real zfs-fuse datasets. /etc/exports, /etc/exports.d and
/var/lib/nfs are private to each test (nasd_testing.nfs)."""

from __future__ import annotations

import asyncio
import os

from nasd.models import NASShare
from nasd_testing.passes import converge
from nasd_nfs import exportfs


def nfs_share(name, dataset, fsid, *clients, **nfs):
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "nfs", "dataset": dataset,
                     "nfs": {"fsid": fsid, "clients": list(clients) or [{"hosts": ["10.0.0.0/8"]}], **nfs}}}


async def start(pool_env, nfs_exports, make_nasd, *docs, datasets=("media",), watch=False):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), *[pool_env.dataset_manifest(d) for d in datasets],
                             *docs)
    nasd = await make_nasd([folder], watch=watch, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                           "nfs": nfs_exports.settings()})
    await converge(nasd)
    return nasd, folder


def exportfs_runs(nasd):
    ra = [s for s in nasd.runner.spawns if s.argv[0].endswith("exportfs")]
    checks = [s for s in nasd.runner.spawns if s.argv[0].endswith("unshare")]
    return len(ra), len(checks)


def mountpoint(nasd, dataset):
    return nasd.reconciler.current[("ZDataset", dataset)].status.mountpoint


async def test_a_share_is_exported_with_its_rules_and_exportfs_puts_it_in_effect(pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, nfs_share(
        "media", "media", 11, {"hosts": ["10.0.0.0/8"], "access": "rw"},
        {"hosts": ["192.168.7.5"], "squash": "all", "anonuid": 3000, "anongid": 3000}))
    path = mountpoint(nasd, "media")
    share = nasd.reconciler.current[("NASShare", "media")]
    assert share.ready, share.condition("Ready")
    line = (f"{path} 10.0.0.0/8(rw,sync,no_subtree_check,crossmnt,root_squash,sec=sys,fsid=11) "
            "192.168.7.5(ro,sync,no_subtree_check,crossmnt,all_squash,anonuid=3000,anongid=3000,sec=sys,fsid=11)")
    assert nfs_exports.own.read_text().splitlines()[-2:] == ["# NASShare media", line]
    assert share.status.exportLine == line
    assert share.status.mountCommand == f"mount -t nfs -o vers=4.2 nas.test:{path} /mnt/media"
    etab = dict(nfs_exports.etab())
    assert set(nfs_exports.exported()[path]) == {"10.0.0.0/8", "192.168.7.5"}
    assert "fsid=11" in etab[path] and ",rw," in etab[path].replace("(", ",")
    assert exportfs_runs(nasd) == (1, 1)


async def test_applying_the_same_manifests_again_writes_nothing_and_runs_no_exportfs(
        pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, nfs_share("media", "media", 11))
    before = os.stat(nfs_exports.own)
    runs = exportfs_runs(nasd)
    for _ in range(3):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        assert not report.mutated
    after = os.stat(nfs_exports.own)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert exportfs_runs(nasd) == runs == (1, 1)


async def test_many_shares_changed_in_one_pass_give_one_check_and_one_exportfs_run(
        pool_env, nfs_exports, make_nasd):
    names = [f"d{i}" for i in range(6)]
    nasd, _ = await start(pool_env, nfs_exports, make_nasd,
                          *[nfs_share(n, n, 100 + i) for i, n in enumerate(names)], datasets=names)
    assert all(nasd.reconciler.current[("NASShare", n)].ready for n in names)
    assert set(nfs_exports.exported()) == {mountpoint(nasd, n) for n in names}
    assert exportfs_runs(nasd) == (1, 1)


async def test_a_burst_of_edits_in_the_daemon_runs_exportfs_once(pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, watch=True)
    path = mountpoint(nasd, "media")
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        await asyncio.sleep(0.5)
        for i in range(5):  # five edits 0.1 s apart, each applied on its own (as the REST API does)
            doc = nfs_share("media", "media", 11, {"hosts": [f"10.0.{i}.0/24"], "access": "rw"})
            nasd.feed.put("api", NASShare.model_validate(doc))
            await asyncio.sleep(0.1)
        for _ in range(60):
            await asyncio.sleep(0.1)
            if nfs_exports.exported().get(path) == {"10.0.4.0/24"}:
                break
        await asyncio.sleep(1.0)  # anything still queued would run now
    finally:
        loop.cancel()
    assert nfs_exports.exported().get(path) == {"10.0.4.0/24"}
    assert nasd.reconciler.current[("NASShare", "media")].ready
    ra, checks = exportfs_runs(nasd)
    assert ra == 1, f"expected one exportfs -ra for the burst, got {ra} (and {checks} checks)"


async def test_removing_a_share_unexports_it_and_leaves_foreign_exports_alone(
        pool_env, nfs_exports, make_nasd, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    foreign = nfs_exports.own.with_name("zfs.exports")
    foreign.write_text(f"{other} 10.9.9.9(ro,no_subtree_check)\n")
    (nfs_exports.scratch / "exports").write_text(f"{tmp_path} 10.8.8.8(ro,no_subtree_check)\n")
    nasd, folder = await start(pool_env, nfs_exports, make_nasd, nfs_share("media", "media", 11),
                               nfs_share("backups", "backups", 12), datasets=("media", "backups"))
    media, backups = mountpoint(nasd, "media"), mountpoint(nasd, "backups")
    assert set(nfs_exports.exported()) == {media, backups, str(other), str(tmp_path)}
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                             pool_env.dataset_manifest("backups"), nfs_share("backups", "backups", 12))
    nasd.feed.replace("manifests", nasd.feed.snapshot()[0].values())  # the folder source re-reads on its own
    await nasd.hooks.supply_desired_state(nasd.ctx, nasd.feed)
    await converge(nasd)
    assert set(nfs_exports.exported()) == {backups, str(other), str(tmp_path)}
    assert "media" not in nfs_exports.own.read_text()
    assert foreign.read_text() == f"{other} 10.9.9.9(ro,no_subtree_check)\n"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                             pool_env.dataset_manifest("backups"))
    await nasd.hooks.supply_desired_state(nasd.ctx, nasd.feed)
    await converge(nasd)
    assert not nfs_exports.own.exists()  # nasd exports nothing: its file is gone
    assert set(nfs_exports.exported()) == {str(other), str(tmp_path)}


async def test_a_foreign_export_of_the_same_path_is_reported_as_a_condition(pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd)
    path = mountpoint(nasd, "media")
    foreign = nfs_exports.own.with_name("zfs.exports")  # where OpenZFS's sharenfs writes
    foreign.write_text(f"{path} *(rw,no_root_squash,no_subtree_check,fsid=99)\n")
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                             nfs_share("media", "media", 11))
    await nasd.hooks.supply_desired_state(nasd.ctx, nasd.feed)
    await converge(nasd)
    share = nasd.reconciler.current[("NASShare", "media")]
    cond = share.condition("ForeignExport")
    assert cond is not None and cond.status == "True" and cond.reason == "ExportedElsewhere"
    assert f"{foreign}:1" in cond.message and "sharenfs=off" in cond.message
    assert foreign.read_text() == f"{path} *(rw,no_root_squash,no_subtree_check,fsid=99)\n"  # untouched
    foreign.unlink()
    await converge(nasd)
    assert nasd.reconciler.current[("NASShare", "media")].condition("ForeignExport") is None


async def test_a_fuse_backed_path_without_fsid_is_refused_before_anything_is_written(
        pool_env, nfs_exports, make_nasd):
    doc = nfs_share("media", "media", 11)
    del doc["spec"]["nfs"]["fsid"]
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, doc)
    ready = nasd.reconciler.current[("NASShare", "media")].condition("Ready")
    if pool_env.daemon.kernel:  # the kernel's ZFS (the VM tier): a real device number, no fsid needed
        assert ready.status == "True" and "fsid=" not in nfs_exports.own.read_text()
        return
    assert ready.status == "False" and ready.reason == "FsidRequired" and "spec.nfs.fsid" in ready.message
    assert not nfs_exports.own.exists(), nfs_exports.own.read_text()
    assert exportfs_runs(nasd) == (0, 0)


async def test_two_shares_with_one_fsid_or_one_path_are_refused_for_the_second(pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, nfs_share("a", "media", 11), nfs_share("b", "other", 11),
                          nfs_share("c", "media", 13), datasets=("media", "other"))
    current = nasd.reconciler.current
    assert current[("NASShare", "a")].ready
    assert current[("NASShare", "b")].condition("Ready").reason == "DuplicateFsid"
    assert current[("NASShare", "c")].condition("Ready").reason == "DuplicateExport"
    assert set(nfs_exports.exported()) == {mountpoint(nasd, "media")}


async def test_exportfs_refusing_the_staged_file_leaves_the_live_exports_alone(pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, nfs_share("media", "media", 11))
    live, etab = nfs_exports.own.read_text(), nfs_exports.etab()
    staged = nfs_exports.own.with_name(".nasd.exports.staged")  # (where the shared file mechanism stages it)
    staged.write_text("/nonexistent/path 10.0.0.1(rw,no_subtree_check)\n"
                      f"{mountpoint(nasd, 'media')} 10.0.0.2(rw,bogus)\n")
    result = await exportfs.check(nasd.ctx, staged, nfs_exports.own.parent)
    assert not result.ok
    assert 'unknown keyword "bogus"' in result.message and result.lines == {2}
    assert nfs_exports.own.read_text() == live and nfs_exports.etab() == etab


async def test_a_host_exportfs_cannot_resolve_is_reported_and_the_others_are_exported_once(
        pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd,
                          nfs_share("media", "media", 11, {"hosts": ["no-such-host.invalid", "10.1.1.1"]}))
    share = nasd.reconciler.current[("NASShare", "media")]
    assert share.ready
    cond = share.condition("UnresolvedHosts")
    assert cond is not None and cond.status == "True" and "no-such-host.invalid" in cond.message
    assert nfs_exports.exported() == {mountpoint(nasd, "media"): {"10.1.1.1"}}
    runs = exportfs_runs(nasd)
    for _ in range(2):  # the missing client is not "drift": no exportfs on every pass
        assert not (await nasd.reconciler.run_pass(ignore_backoff=True)).mutated
    assert exportfs_runs(nasd) == runs == (1, 1)


async def test_a_reload_cut_short_after_the_file_was_written_is_made_by_the_next_pass(
        pool_env, nfs_exports, make_nasd):
    nasd, folder = await start(pool_env, nfs_exports, make_nasd, nfs_share(
        "media", "media", 11, {"hosts": ["10.0.0.0/8"]}, {"hosts": ["192.168.7.5"]}))
    path = mountpoint(nasd, "media")
    # what a pass leaves behind when nasd is killed between writing the file and `exportfs -ra`
    text = nfs_exports.own.read_text()
    nfs_exports.own.write_text(text.replace(" 192.168.7.5(ro,sync,no_subtree_check,crossmnt,root_squash,sec=sys,"
                                            "fsid=11)", ""))
    (pool_env.state_dir / "nfs-reload-owed").touch()
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                             nfs_share("media", "media", 11, {"hosts": ["10.0.0.0/8"]}))
    restarted = await make_nasd([folder], plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                   "nfs": nfs_exports.settings()})
    await converge(restarted)
    assert nfs_exports.exported()[path] == {"10.0.0.0/8"}  # 192.168.7.5 lost its access
    assert exportfs_runs(restarted) == (1, 0)  # the file was right: only the reload was owed
    assert not (pool_env.state_dir / "nfs-reload-owed").exists()


async def test_a_share_whose_hosts_all_fail_to_resolve_is_reported_and_does_not_loop(
        pool_env, nfs_exports, make_nasd):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd,
                          nfs_share("media", "media", 11, {"hosts": ["no-such-host.invalid"]}))
    share = nasd.reconciler.current[("NASShare", "media")]
    assert share.ready and share.condition("UnresolvedHosts").status == "True"
    assert mountpoint(nasd, "media") not in nfs_exports.exported()
    runs = exportfs_runs(nasd)
    for _ in range(2):
        assert not (await nasd.reconciler.run_pass(ignore_backoff=True)).mutated
    assert exportfs_runs(nasd) == runs


async def test_an_export_whose_path_is_gone_does_not_block_the_other_shares(pool_env, nfs_exports, make_nasd):
    """A line left from a share whose dataset went away: exportfs refuses it (cannot stat the path); it
    is left out instead of holding every other change back."""
    from nasd_nfs.render import render
    nfs_exports.own.write_text(render({"ghost": "/nonexistent/ghost 10.0.0.1(ro,no_subtree_check)"}))
    nasd, _ = await start(pool_env, nfs_exports, make_nasd, nfs_share("media", "media", 11))
    assert nasd.reconciler.current[("NASShare", "media")].ready
    assert set(nfs_exports.exported()) == {mountpoint(nasd, "media")}
    assert "ghost" not in nfs_exports.own.read_text()
