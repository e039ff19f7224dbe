"""SMB shares applied concurrently (one group, ``applyConcurrency`` 8) still cost one testparm and one reload a
pass: the first share action renders every share, checks, swaps and reloads once; the others wait for it and
only report their own outcome. testparm runs behind a wrapper that makes it slow, so every share action of the
group is waiting on the one check while it runs."""

from __future__ import annotations

import os
import shutil

from test_smb_shares import identities, share

SHARES = [f"sh{i}" for i in range(8)]


def slow_testparm(root) -> str:
    real = shutil.which("testparm") or "/usr/bin/testparm"
    wrapper = root / "testparm-slow"
    wrapper.write_text(f"#!/bin/sh\nsleep 0.5\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def docs(pool_env, smb_env, *shares):
    return [pool_env.pool_manifest(), *[pool_env.dataset_manifest(n) for n in SHARES],
            *identities(pool_env, smb_env), *shares]


async def converge(nasd, pool_env, *manifests, settle: bool = True):
    """Publish these manifests and run passes until one changes nothing (``settle`` False: a refused share is
    retried by every pass: four passes, then stop)."""
    from nasd.sources.manifests import ManifestFolder

    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *manifests)
    source = ManifestFolder([folder])
    source.scan()
    source.publish(nasd.feed)
    for _ in range(4):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            return
    assert not settle, f"did not converge: {[(o.key, o.reason, o.message) for o in report.outcomes if o.actions]}"


async def test_many_shares_applied_at_once_cost_one_testparm_and_one_reload(pool_env, smb_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs(pool_env, smb_env, share("media0", "sh0")))
    nasd = await make_nasd([folder], watch=True, applyConcurrency=8,
                           programs={"testparm": slow_testparm(pool_env.root)},
                           plugins={"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    await converge(nasd, pool_env, *docs(pool_env, smb_env, share("media0", "sh0")))
    before = len(nasd.runner.spawns)
    await converge(nasd, pool_env, *docs(pool_env, smb_env, share("media0", "sh0"),
                                         *[share(n, n) for n in SHARES]))
    ran = [os.path.basename(s.argv[0]) for s in nasd.runner.spawns[before:]]
    assert ran.count("testparm-slow") == 1 and ran.count("smbcontrol") == 1, ran
    conf = nasd.pm.get_plugin("smb").settings.config_file.read_text()
    for name in SHARES:
        ready = nasd.reconciler.current[("NASShare", name)].condition("Ready")
        assert (ready.status, ready.reason) == ("True", "Ready"), (name, ready)
        assert conf.count(f"[{name}]") == 1
        assert smb_env.smbclient(name, "alice", "s3cret-Alice", "ls").returncode == 0, name


async def test_a_refused_share_among_concurrent_ones_keeps_only_itself_out(pool_env, smb_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs(pool_env, smb_env))
    nasd = await make_nasd([folder], watch=True, applyConcurrency=8,
                           plugins={"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    await converge(nasd, pool_env, *docs(pool_env, smb_env))
    bad = share("bad", "sh0", extraParameters={"follow symlinks": "maybe"})
    await converge(nasd, pool_env, *docs(pool_env, smb_env, *[share(n, n) for n in SHARES], bad), settle=False)
    current = nasd.reconciler.current
    ready = current[("NASShare", "bad")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "ConfigRejected"), ready
    assert "testparm rejected" in ready.message and "maybe" in ready.message
    for name in SHARES:
        assert current[("NASShare", name)].condition("Ready").reason == "Ready", name
        assert smb_env.smbclient(name, "alice", "s3cret-Alice", "ls").returncode == 0, name
    assert "[bad]" not in nasd.pm.get_plugin("smb").settings.config_file.read_text()


def smbd_mains(conf: str) -> list[int]:
    """The pids of the smbd main processes serving ``conf`` (children share its process group)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if argv and argv[0].endswith(b"smbd") and conf.encode() in argv:
            if int(stat.rsplit(")", 1)[1].split()[3]) == int(pid):  # its own process group's leader
                out.append(int(pid))
    return out


async def test_a_restarted_nasd_starts_one_smbd_for_many_shares_applied_at_once(pool_env, smb_env, make_nasd):
    folder = pool_env.root / "manifests"
    manifests = docs(pool_env, smb_env, *[share(n, n) for n in SHARES])
    pool_env.write_manifests(folder, *manifests)
    settings = {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()}
    first = await make_nasd([folder], watch=True, applyConcurrency=8, plugins=settings)
    await converge(first, pool_env, *manifests)
    await first.stop()
    # smb.conf is already what the shares need: each share's plan is only "start smbd", all run at once
    again = await make_nasd([folder], watch=True, applyConcurrency=8, plugins=settings)
    await converge(again, pool_env, *manifests)
    conf = str(again.pm.get_plugin("smb").settings.config_file)
    assert smbd_mains(conf) == [again.pm.get_plugin("smb").supervisor.proc.pid]
    for name in SHARES:
        assert again.reconciler.current[("NASShare", name)].ready, name
        assert smb_env.smbclient(name, "alice", "s3cret-Alice", "ls").returncode == 0, name
