"""Incremental passes with SMB shares (issue 18), with the real zfs-fuse, smbd, testparm and smbclient: a share
applied or deleted alone is planned alone (with what it needs) and checked alone, the others keep being served,
and the full pass (the periodic resync) still corrects drift."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

from nasd.models import parse_resource

D = {"apiVersion": "nasd.io/v1alpha1"}


def identities(smb_env):
    return [
        D | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}},
        D | {"kind": "NASUser", "metadata": {"name": "alice"},
             "spec": {"directory": "local", "uid": 2001, "passwordSecretRef": {"file": smb_env.secret("alice", PW)}}},
    ]


PW = "s3cret-Alice"


def share(name, dataset="media", **smb):
    return D | {"kind": "NASShare", "metadata": {"name": name},
                "spec": {"protocol": "smb", "dataset": dataset, "smb": {"validUsers": ["alice"], **smb}}}


def recording_testparm(tmp_path: Path) -> tuple[str, Path]:
    """A testparm in front of the real one that keeps a copy of every file it is asked to check."""
    seen = tmp_path / "testparm-saw"
    seen.mkdir()
    script = tmp_path / "testparm"
    script.write_text(f"#!/bin/sh\nn=$(ls {seen} | wc -l)\ncp \"$2\" {seen}/$n.conf\n"
                      f"exec {shutil.which('testparm')} \"$@\"\n")
    script.chmod(0o755)
    return str(script), seen


async def start(pool_env, smb_env, make_nasd, tmp_path, *names, **config):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
                             *identities(smb_env), *[share(n) for n in names])
    testparm, seen = recording_testparm(tmp_path)
    config.setdefault("plugins", {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    nasd = await make_nasd([folder], watch=True, programs={"testparm": testparm}, **config)
    for _ in range(4):
        if not (await nasd.reconciler.run_pass(ignore_backoff=True)).mutated:
            break
    assert all(r.ready for r in nasd.reconciler.current.values()), {
        k: r.condition("Ready") for k, r in nasd.reconciler.current.items() if not r.ready}
    return nasd, seen


def apply(nasd, doc) -> None:
    """What the API does on a POST: the one object into the feed."""
    nasd.feed.put("api", parse_resource(doc))


def conf_path(nasd) -> Path:
    return nasd.pm.get_plugin("smb").settings.config_file


def ls(smb_env, name) -> subprocess.CompletedProcess:
    return smb_env.smbclient(name, "alice", PW, "ls")


def programs(nasd, since: int) -> list[str]:
    return [os.path.basename(s.argv[0]) for s in nasd.runner.spawns[since:]]


async def test_a_share_applied_alone_is_planned_and_checked_alone_and_the_others_stay_served(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, seen = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", "s1", "s2")
    checked_before = len(list(seen.iterdir()))
    apply(nasd, share("s3"))
    report = await nasd.reconciler.run_pass(incremental=True)
    # the new share, and what it depends on (its dataset and its user, planned again: nothing to do for them)
    assert {o.key for o in report.outcomes} == {("NASShare", "s3"), ("ZDataset", "media"), ("NASUser", "alice")}
    assert nasd.reconciler.current[("NASShare", "s3")].ready
    assert ls(smb_env, "s3").returncode == 0
    # testparm judged one file: the [global] in effect and the new section, not the sections already served
    checked = sorted(seen.iterdir(), key=lambda p: int(p.stem))[checked_before:]
    assert len(checked) == 1, checked
    text = checked[0].read_text()
    assert "[global]" in text and "[s3]" in text and "[s0]" not in text and "[s2]" not in text
    live = conf_path(nasd).read_text()
    assert all(f"[s{i}]" in live for i in range(4))
    for name in ("s0", "s1", "s2"):
        assert ls(smb_env, name).returncode == 0, name
        assert nasd.reconciler.current[("NASShare", name)].ready
    # the follow-up pass verifies what the last one changed, and runs neither testparm nor smbcontrol
    before = len(nasd.runner.spawns)
    again = await nasd.reconciler.run_pass(incremental=True)
    assert ("NASShare", "s3") in {o.key for o in again.outcomes} and ("NASShare", "s0") not in {
        o.key for o in again.outcomes}
    assert not again.mutated
    assert "testparm" not in programs(nasd, before) and "smbcontrol" not in programs(nasd, before)


async def test_a_share_deleted_alone_leaves_smb_conf_and_the_others_stay_served(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", "s1")
    apply(nasd, share("extra"))
    await nasd.reconciler.run_pass(incremental=True)
    assert ls(smb_env, "extra").returncode == 0
    assert nasd.feed.remove("api", ("NASShare", "extra"))
    report = await nasd.reconciler.run_pass(incremental=True)
    assert report.deleted == [("NASShare", "extra")]
    assert ("NASShare", "extra") not in nasd.reconciler.current
    assert "[extra]" not in conf_path(nasd).read_text()
    gone = ls(smb_env, "extra")
    assert "NT_STATUS_BAD_NETWORK_NAME" in gone.stdout + gone.stderr
    assert ls(smb_env, "s0").returncode == 0 and ls(smb_env, "s1").returncode == 0


async def test_a_share_rejected_alone_keeps_the_others_served_and_says_why(pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", "s1")
    apply(nasd, share("bad", extraParameters={"follow symlinks": "maybe"}))
    await nasd.reconciler.run_pass(incremental=True)
    ready = nasd.reconciler.current[("NASShare", "bad")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "ConfigRejected"), ready
    assert "maybe" in ready.message and "not boolean" in ready.message
    assert "[bad]" not in conf_path(nasd).read_text()
    assert ls(smb_env, "s0").returncode == 0 and ls(smb_env, "s1").returncode == 0
    # fixed: the next incremental pass serves it
    apply(nasd, share("bad"))
    await nasd.reconciler.run_pass(incremental=True, ignore_backoff=True)
    assert nasd.reconciler.current[("NASShare", "bad")].ready
    assert ls(smb_env, "bad").returncode == 0


async def test_a_share_waiting_for_its_dataset_comes_up_when_the_dataset_is_applied(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0")
    apply(nasd, share("docs", dataset="docs"))
    await nasd.reconciler.run_pass(incremental=True)
    assert nasd.reconciler.current[("NASShare", "docs")].condition("Ready").reason == "DatasetNotReady"
    apply(nasd, pool_env.dataset_manifest("docs"))
    report = await nasd.reconciler.run_pass(incremental=True)
    # the dataset, what depends on it (the waiting share) and what that needs; not the other shares
    planned = {o.key for o in report.outcomes}
    assert {("ZDataset", "docs"), ("NASShare", "docs")} <= planned and ("NASShare", "s0") not in planned
    assert nasd.reconciler.current[("NASShare", "docs")].ready
    assert ls(smb_env, "docs").returncode == 0


async def test_a_change_to_a_user_plans_every_resource(pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", "s1")
    user = identities(smb_env)[1]
    user["spec"]["fullName"] = "Alice A."
    apply(nasd, user)
    report = await nasd.reconciler.run_pass(incremental=True)
    assert {o.key for o in report.outcomes} == set(nasd.reconciler.current)


async def test_drift_in_a_share_no_change_touches_is_corrected_by_the_full_pass(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", "s1")
    path = conf_path(nasd)
    # someone removes [s0] by hand (and smbd reloads)
    blocks = path.read_text().split("\n\n")
    path.write_text("\n\n".join(b for b in blocks if "[s0]" not in b))
    subprocess.run(["smbcontrol", "-s", str(path), "smbd", "reload-config"], check=True)
    apply(nasd, share("s2"))
    await nasd.reconciler.run_pass(incremental=True)  # plans s2 only: what it did not change, it does not look at
    assert ls(smb_env, "s2").returncode == 0
    report = await nasd.reconciler.run_pass()  # the periodic resync: every share planned, [s0] written again
    assert report.mutated
    assert "[s0]" in path.read_text()
    assert ls(smb_env, "s0").returncode == 0 and ls(smb_env, "s1").returncode == 0


async def test_the_first_time_machine_share_applied_alone_brings_apples_extensions_to_every_share(
        pool_env, smb_env, make_nasd, tmp_path):
    # (no resync for an hour: what puts fruit on [s0] is the full pass the SMB plugin asks for)
    # (and no mDNS advertiser, whose checks ask for passes of their own)
    nasd, _ = await start(pool_env, smb_env, make_nasd, tmp_path, "s0", resyncSeconds=3600,
                          plugins={"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings(),
                                   "timemachine": {"mdns": "off"}})
    assert "fruit" not in conf_path(nasd).read_text()
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        await asyncio.wait_for(nasd.reconciler.first_pass_done.wait(), 30)
        apply(nasd, pool_env.dataset_manifest("backups"))
        apply(nasd, share("backups", dataset="backups", timeMachine={"enabled": True}))
        deadline = time.monotonic() + 30
        while True:
            text = conf_path(nasd).read_text()
            s0 = text.split("[s0]", 1)[1].split("\n\n", 1)[0]
            if "[backups]" in text and "fruit" in s0:
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.1)
    finally:
        loop.cancel()
        try:
            await loop
        except asyncio.CancelledError:
            pass
    assert nasd.reconciler.current[("NASShare", "backups")].ready
    assert ls(smb_env, "s0").returncode == 0
