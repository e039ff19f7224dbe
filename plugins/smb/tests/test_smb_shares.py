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


def base(pool_env, smb_env, *extra_datasets):
    return [pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
            *[pool_env.dataset_manifest(n) for n in extra_datasets], *identities(pool_env, smb_env)]


async def rewrite(nasd, pool_env, *docs):
    """Change the manifests and converge, as the daemon would on its next pass."""
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    from nasd.sources.manifests import ManifestFolder

    source = ManifestFolder([folder])
    source.scan()
    source.publish(nasd.feed)
    for _ in range(4):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            break


def smb_plugin(nasd):
    """The daemon's SMB plugin (its settings, the smbd it supervises)."""
    return nasd.pm.get_plugin("smb")


def smbd_pid(nasd) -> int:
    return smb_plugin(nasd).supervisor.proc.pid


async def test_a_read_only_share_refuses_writes(pool_env, smb_env, make_nasd, tmp_path):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env),
                       share("media", "media", validUsers=["alice"], readOnly=True))
    give(nasd, "media", 2001, 3001)
    (tmp_path / "f.txt").write_text("x")
    put = smb_env.smbclient("media", "alice", "s3cret-Alice", "put f.txt", cwd=tmp_path)
    assert "NT_STATUS_ACCESS_DENIED" in put.stdout + put.stderr
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0


async def test_guest_is_refused_unless_the_share_enables_it(pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env, "public"),
                       share("media", "media"), share("public", "public", guestOk=True))
    give(nasd, "public", 65534, 65534, 0o755)
    refused = smb_env.smbclient("media", None, None, "ls")
    assert refused.returncode != 0
    assert "NT_STATUS_ACCESS_DENIED" in refused.stdout + refused.stderr or "LOGON_FAILURE" in refused.stdout
    assert smb_env.smbclient("public", None, None, "ls").returncode == 0


async def test_hosts_deny_refuses_a_client(pool_env, smb_env, make_nasd):
    docs = base(pool_env, smb_env, "docs")
    await start(pool_env, smb_env, make_nasd, *docs,
                share("media", "media", validUsers=["alice"], hostsDeny=["127.0.0.1"]),
                share("docs", "docs", validUsers=["alice"], hostsDeny=["192.0.2.1"]))
    denied = smb_env.smbclient("media", "alice", "s3cret-Alice", "ls")
    assert denied.returncode != 0 and "tree connect failed: NT_STATUS_ACCESS_DENIED" in denied.stdout + denied.stderr
    # the same user from the same host reaches a share that denies another host only
    assert smb_env.smbclient("docs", "alice", "s3cret-Alice", "ls").returncode == 0


async def test_a_changed_password_works_and_the_old_one_stops_working(pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0
    smb_env.secret("alice", "n3w-Secret")
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert smb_env.smbclient("media", "alice", "n3w-Secret", "ls").returncode == 0
    old = smb_env.smbclient("media", "alice", "s3cret-Alice", "ls")
    assert "NT_STATUS_LOGON_FAILURE" in old.stdout + old.stderr


async def test_a_deleted_user_can_no_longer_log_in_and_is_gone_from_the_system(pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    assert smb_env.smbclient("media", "bob", "s3cret-Bob", "ls").returncode == 0
    docs = [d for d in base(pool_env, smb_env) if d["metadata"]["name"] != "bob"] + [share("media", "media")]
    await rewrite(nasd, pool_env, *docs)
    gone = smb_env.smbclient("media", "bob", "s3cret-Bob", "ls")
    assert gone.returncode != 0 and "NT_STATUS_LOGON_FAILURE" in gone.stdout + gone.stderr
    assert smb_env.uid_of("bob") is None and smb_env.uid_of("alice") == 2001


async def test_a_new_share_is_reachable_without_restarting_smbd_and_an_edit_takes_effect(
        pool_env, smb_env, make_nasd, tmp_path):
    docs = base(pool_env, smb_env, "docs")
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    pid = smbd_pid(nasd)
    missing = smb_env.smbclient("docs", "alice", "s3cret-Alice", "ls")
    assert "NT_STATUS_BAD_NETWORK_NAME" in missing.stdout + missing.stderr
    await rewrite(nasd, pool_env, *docs, share("media", "media"), share("docs", "docs"))
    give(nasd, "docs", 2001, 3001)
    assert smb_env.smbclient("docs", "alice", "s3cret-Alice", "ls").returncode == 0
    assert smbd_pid(nasd) == pid
    (tmp_path / "f.txt").write_text("x")
    assert smb_env.smbclient("docs", "alice", "s3cret-Alice", "put f.txt", cwd=tmp_path).returncode == 0
    await rewrite(nasd, pool_env, *docs, share("media", "media"), share("docs", "docs", readOnly=True))
    put = smb_env.smbclient("docs", "alice", "s3cret-Alice", "put f.txt g.txt", cwd=tmp_path)
    assert "NT_STATUS_ACCESS_DENIED" in put.stdout + put.stderr
    assert smbd_pid(nasd) == pid


async def test_an_unchanged_config_is_neither_written_nor_reloaded(pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    conf = smb_plugin(nasd).settings.config_file
    mtime = conf.stat().st_mtime_ns
    before = len(nasd.runner.spawns)
    await nasd.reconciler.run_pass()
    assert [s.argv for s in nasd.runner.spawns[before:] if s.mutating] == []
    assert conf.stat().st_mtime_ns == mtime


async def test_a_deleted_share_leaves_smb_conf_and_its_data_stays(pool_env, smb_env, make_nasd, tmp_path):
    docs = base(pool_env, smb_env)
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    path = give(nasd, "media", 2001, 3001)
    (tmp_path / "keep.txt").write_text("keep")
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "put keep.txt", cwd=tmp_path).returncode == 0
    await rewrite(nasd, pool_env, *docs)
    gone = smb_env.smbclient("media", "alice", "s3cret-Alice", "ls")
    assert "NT_STATUS_BAD_NETWORK_NAME" in gone.stdout + gone.stderr
    assert "[media]" not in smb_plugin(nasd).settings.config_file.read_text()
    assert os.path.exists(os.path.join(path, "keep.txt"))


async def test_ldap_and_ad_directories_are_rendered_and_reported_not_implemented(pool_env, smb_env, make_nasd):
    d = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASDirectory"}
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"),
                       d | {"metadata": {"name": "corp"}, "spec": {"type": "ldap", "ldap": {
                           "uri": "ldap://ldap.example.org", "baseDN": "dc=example,dc=org"}}},
                       d | {"metadata": {"name": "win"}, "spec": {"type": "ad", "ad": {
                           "realm": "example.org", "workgroup": "EXAMPLE"}}})
    for name in ("corp", "win"):
        c = nasd.reconciler.current[("NASDirectory", name)].condition("Ready")
        assert (c.status, c.reason) == ("False", "NotImplemented")
    text = smb_plugin(nasd).settings.config_file.read_text()
    assert "ldap suffix = dc=example,dc=org" in text and "realm = EXAMPLE.ORG" in text


async def test_smbd_that_dies_is_restarted(pool_env, smb_env, make_nasd):
    import asyncio
    import signal

    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    pid = smbd_pid(nasd)
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        await asyncio.sleep(0.1)
        if smbd_pid(nasd) != pid and smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0:
            break
    else:
        raise AssertionError("smbd was not restarted")


async def test_a_config_testparm_rejects_leaves_the_running_one_and_says_why(pool_env, smb_env, make_nasd):
    docs = base(pool_env, smb_env)
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    conf = smb_plugin(nasd).settings.config_file
    before = conf.read_text()
    await rewrite(nasd, pool_env, *docs, share("media", "media", extraParameters={"follow symlinks": "maybe"}))
    ready = nasd.reconciler.current[("NASShare", "media")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "ConfigRejected")
    assert "not boolean" in ready.message or "follow symlinks" in ready.message
    assert conf.read_text() == before
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0


async def test_hostile_input_through_the_api_is_refused_and_smb_conf_is_unchanged(
        pool_env, smb_env, make_nasd, aiohttp_client):
    from nasd.web.app import make_app

    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    conf = smb_plugin(nasd).settings.config_file
    before = conf.read_text()
    client = await aiohttp_client(make_app(nasd))
    cases = [  # (the smb options, the field the error must name)
        ({"name": "x]\n[global]\n\tinclude = /etc/evil"}, "name"),
        ({"name": "media;x"}, "name"), ({"name": "media#x"}, "name"), ({"name": "[media]"}, "name"),
        ({"extraParameters": {"include": "/etc/evil"}}, "extraParameters"),
        ({"extraParameters": {"root preexec": "/bin/sh"}}, "extraParameters"),
        ({"extraParameters": {"veto files": "/%m/"}}, "extraParameters"),
        ({"extraParameters": {"hide files": "/x/\n[evil]"}}, "extraParameters"),
        ({"extraParameters": {"veto files": "; comment"}}, "extraParameters"),
        ({"extraParameters": {"veto files": "# comment"}}, "extraParameters"),
        ({"validUsers": ["alice; rm"]}, "validUsers"), ({"hostsAllow": ["10.0.0.1\n[evil]"]}, "hostsAllow"),
        ({"createMask": "0777\n[evil]"}, "createMask"),
    ]
    for smb, field in cases:
        evil = share("evil", "media")
        evil["spec"]["smb"] = smb
        resp = await client.post("/apis/nasd.io/v1alpha1/nasshares", json=evil)
        assert resp.status == 422, (smb, await resp.text())
        assert field in await resp.text(), (smb, await resp.text())
    # paths with '..': a dataset path, a password file
    dataset = pool_env.dataset_manifest("evil")
    dataset["spec"]["path"] = "../etc"
    resp = await client.post("/apis/nasd.io/v1alpha1/zdatasets", json=dataset)
    assert resp.status == 422 and "path" in await resp.text()
    user = identities(pool_env, smb_env)[2]
    user = user | {"metadata": {"name": "mallory"},
                   "spec": user["spec"] | {"uid": 2099, "passwordSecretRef": {"file": "/etc/nasd/../shadow"}}}
    resp = await client.post("/apis/nasd.io/v1alpha1/nasusers", json=user)
    assert resp.status == 422 and "passwordSecretRef" in await resp.text()
    await nasd.reconciler.run_pass()
    assert conf.read_text() == before


async def test_stopping_nasd_stops_smbd_and_its_helpers(pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    # an RPC call makes smbd start samba-dcerpcd helpers, which outlive smbd unless stopped
    import subprocess
    subprocess.run(["smbclient", "-L", "127.0.0.1", "-p", str(smb_env.port), "-U", "alice%s3cret-Alice"],
                   capture_output=True, timeout=30)
    pid = smbd_pid(nasd)
    conf = str(smb_plugin(nasd).settings.config_file)
    await nasd.stop()
    import asyncio
    for _ in range(50):
        alive = [p for p in os.listdir("/proc") if p.isdigit() and _mentions(p, conf)]
        if not alive and not os.path.exists(f"/proc/{pid}"):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"left running: {alive}")


def _mentions(pid: str, conf: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return any(conf in a for a in args)


async def test_group_members_reach_a_share_restricted_to_their_group(pool_env, smb_env, make_nasd):
    docs = base(pool_env, smb_env)
    for d in docs:
        if d["kind"] == "NASGroup":
            d["spec"]["members"] = ["bob"]  # bob joins staff through the group; alice through her own spec
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media", validGroups=["staff"]))
    group = (smb_env.identity_root / "etc" / "group").read_text()
    assert "staff:x:3001:alice,bob" in group or "staff:x:3001:bob,alice" in group
    assert smb_env.smbclient("media", "bob", "s3cret-Bob", "ls").returncode == 0
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0
    assert nasd.reconciler.current[("NASShare", "media")].status.allowedGroups == ["staff"]


async def test_system_mode_drives_an_smbd_nasd_did_not_start(pool_env, smb_env, make_nasd, tmp_path):
    import asyncio
    import signal
    import subprocess

    settings = smb_env.settings() | {"mode": "system", "configFile": str(tmp_path / "system-smb.conf"),
                                     "runDir": str(tmp_path / "system-samba")}
    folder = pool_env.root / "manifests"
    docs = base(pool_env, smb_env, "docs")
    pool_env.write_manifests(folder, *docs, share("media", "media"))
    nasd = await make_nasd([folder], watch=True, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": settings})
    for _ in range(3):
        await nasd.reconciler.run_pass(ignore_backoff=True)
    assert smb_plugin(nasd).supervisor is None  # nasd starts no smbd of its own
    smbd = subprocess.Popen(["smbd", "--foreground", "--no-process-group", "-s", settings["configFile"]],
                            env=smb_env.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the system smbd does not serve the share nasd configured")
        before = len(nasd.runner.spawns)
        await rewrite(nasd, pool_env, *docs, share("media", "media"), share("docs", "docs"))
        assert [s.returncode for s in nasd.runner.spawns[before:] if "reload-config" in s.argv] == [0]
        assert smb_env.smbclient("docs", "alice", "s3cret-Alice", "ls").returncode == 0
        assert smbd.poll() is None
    finally:
        os.killpg(smbd.pid, signal.SIGTERM)
        smbd.wait(10)


def _programs(nasd, since: int) -> list[str]:
    return [os.path.basename(s.argv[0]) for s in nasd.runner.spawns[since:]]


async def test_shares_added_in_one_pass_with_their_datasets_cost_one_check_and_one_reload(
        pool_env, smb_env, make_nasd):
    nasd = await start(pool_env, smb_env, make_nasd, *base(pool_env, smb_env), share("media", "media"))
    pid = smbd_pid(nasd)
    before = len(nasd.runner.spawns)
    # the datasets docs and music are created in the same pass as their shares
    await rewrite(nasd, pool_env, *base(pool_env, smb_env, "docs", "music"), share("media", "media"),
                  share("docs", "docs"), share("music", "music"), share("media2", "media", readOnly=True))
    ran = _programs(nasd, before)
    assert ran.count("testparm") == 1 and ran.count("smbcontrol") == 1, ran
    for name in ("docs", "music", "media2"):
        assert smb_env.smbclient(name, "alice", "s3cret-Alice", "ls").returncode == 0, name
        assert nasd.reconciler.current[("NASShare", name)].ready
    assert smbd_pid(nasd) == pid


async def test_a_share_testparm_rejects_keeps_neither_the_shares_of_its_pass_nor_later_ones_out(
        pool_env, smb_env, make_nasd):
    docs = base(pool_env, smb_env, "docs", "music")
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    bad = share("bad", "media", extraParameters={"follow symlinks": "maybe"})
    await rewrite(nasd, pool_env, *docs, share("media", "media"), share("docs", "docs"), bad)
    current = nasd.reconciler.current
    assert current[("NASShare", "bad")].condition("Ready").reason == "ConfigRejected"
    assert current[("NASShare", "docs")].ready
    assert smb_env.smbclient("docs", "alice", "s3cret-Alice", "ls").returncode == 0
    # the rejected share stays declared (and retried): a share added later still gets in
    await rewrite(nasd, pool_env, *docs, share("media", "media"), share("docs", "docs"), bad,
                  share("music", "music"))
    assert current[("NASShare", "music")].ready, current[("NASShare", "music")].condition("Ready")
    assert smb_env.smbclient("music", "alice", "s3cret-Alice", "ls").returncode == 0
    assert "[bad]" not in smb_plugin(nasd).settings.config_file.read_text()
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0


async def test_a_share_claiming_a_served_name_is_refused_and_the_pass_goes_on(pool_env, smb_env, make_nasd):
    docs = base(pool_env, smb_env, "docs", "music")
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    copycat = share("copycat", "docs")
    copycat["spec"]["smb"]["name"] = "MEDIA"  # share names are case-insensitive
    await rewrite(nasd, pool_env, *docs, share("media", "media"), copycat, share("music", "music"))
    current = nasd.reconciler.current
    ready = current[("NASShare", "copycat")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "DuplicateShareName")
    assert current[("NASShare", "media")].ready and current[("NASShare", "music")].ready
    assert smb_env.smbclient("music", "alice", "s3cret-Alice", "ls").returncode == 0
    conf = smb_plugin(nasd).settings.config_file.read_text()
    assert conf.count("[media]") == 1 and "path = " + current[("ZDataset", "media")].status.mountpoint in conf


async def test_a_share_switched_to_nfs_leaves_smb_conf_and_is_exported(pool_env, smb_env, nfs_exports, make_nasd):
    docs = base(pool_env, smb_env)
    nasd = await start(pool_env, smb_env, make_nasd, *docs, share("media", "media"))
    nfs = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
           "spec": {"protocol": "nfs", "dataset": "media", "nfs": {"fsid": 5, "clients": [{"hosts": ["127.0.0.1"]}]}}}
    await rewrite(nasd, pool_env, *docs, nfs)
    assert "[media]" not in smb_plugin(nasd).settings.config_file.read_text()
    gone = smb_env.smbclient("media", "alice", "s3cret-Alice", "ls")
    assert "NT_STATUS_BAD_NETWORK_NAME" in gone.stdout + gone.stderr
    assert nasd.reconciler.current[("NASShare", "media")].ready
    assert nfs_exports.exported() == {nasd.reconciler.current[("ZDataset", "media")].status.mountpoint: {"127.0.0.1"}}


async def test_a_share_that_never_got_its_dataset_can_be_deleted(pool_env, make_nasd, smb_env):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), share("lonely", "nowhere"))
    nasd = await make_nasd([folder], plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                              "smb": smb_env.settings()})
    await nasd.reconciler.run_pass()
    assert not nasd.reconciler.current[("NASShare", "lonely")].ready
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    from nasd.sources.manifests import ManifestFolder

    source = ManifestFolder([folder])
    source.scan()
    source.publish(nasd.feed)
    await nasd.reconciler.run_pass()
    assert ("NASShare", "lonely") not in nasd.reconciler.current


async def test_an_smbd_that_could_not_start_is_started_at_a_later_pass(pool_env, smb_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base(pool_env, smb_env), share("media", "media"))
    # the first start fails for real: the configured smbd is a program that exits at once
    nasd = await make_nasd([folder], watch=True, programs={"smbd": "/bin/false"}, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    for _ in range(3):
        await nasd.reconciler.run_pass(ignore_backoff=True)
    ready = nasd.reconciler.current[("NASShare", "media")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "SmbdFailed"), ready
    del nasd.runner.programs["smbd"]  # the admin fixes it (here: the real smbd again)
    await nasd.reconciler.run_pass(ignore_backoff=True)
    assert nasd.reconciler.current[("NASShare", "media")].ready
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0


async def test_another_plugin_adds_share_options_through_the_smb_hook_and_unsafe_ones_are_refused(
        pool_env, smb_env, make_nasd):
    from nasd.hookspecs import hookimpl

    class Extension:  # as the snapshots and Time Machine plugins will: no import of the SMB plugin
        def __init__(self, share, options):
            self.share, self.options = share, options

        @hookimpl
        def smb_share_options(self, ctx, share, dataset):
            return self.options if share.name == self.share else None

    extensions = [("ext-a", Extension("media", {"vfs objects": "catia", "hide dot files": "yes"})),
                  ("ext-b", Extension("media", {"vfs objects": "streams_xattr fruit"})),
                  ("ext-odd", Extension("odd", {"vfs objects": "full_audit"})),
                  ("ext-evil", Extension("bad", {"root preexec": "/bin/sh -c evil"}))]
    folder = pool_env.root / "manifests"
    docs = base(pool_env, smb_env, "docs")
    pool_env.write_manifests(folder, *docs, share("media", "media"), share("docs", "docs"), share("bad", "docs"),
                              share("odd", "docs"))
    # registered like installed plugins: the SMB plugin's spec (added through addhooks) validates them
    nasd = await make_nasd([folder], watch=True, extra_plugins=extensions, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()})
    assert nasd.pm.hook.smb_share_options.spec is not None
    for _ in range(4):
        await nasd.reconciler.run_pass(ignore_backoff=True)
    conf = smb_plugin(nasd).settings.config_file.read_text()
    media = conf.split("[media]\n", 1)[1].split("\n\n", 1)[0]
    assert "\thide dot files = yes" in media
    vfs = next(line for line in media.splitlines() if line.startswith("\tvfs objects = "))
    # one list, in nasd's stacking order whoever asked first (the features every share has, then xattr_tdb)
    assert vfs == "\tvfs objects = catia fruit streams_xattr acl_xattr xattr_tdb"
    current = nasd.reconciler.current
    assert current[("NASShare", "media")].ready and current[("NASShare", "docs")].ready
    assert smb_env.smbclient("media", "alice", "s3cret-Alice", "ls").returncode == 0
    assert current[("NASShare", "bad")].condition("Ready").reason == "UnsafeValue"
    assert "[bad]" not in conf and "preexec" not in conf
    odd = current[("NASShare", "odd")].condition("Ready")
    assert odd.reason == "UnsafeValue" and "full_audit" in odd.message and "[odd]" not in conf


def test_an_implementation_of_the_smb_hook_with_a_wrong_signature_is_refused_at_start():
    import pluggy

    from nasd.hookspecs import hookimpl
    from nasd.plugins import make_plugin_manager

    class Wrong:
        @hookimpl
        def smb_share_options(self, ctx, share, dataset, colour):
            return None

    import pytest

    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager(extra=[("wrong", Wrong())])
