"""Samba's own conformance suite agrees: the shares `nasd serve` runs pass, per suite, every subtest of
smbtorture that a stock smbd configured as Samba's selftest passes on the same dataset, and no smbd panics.

Three kinds of share, each on its own dataset of the test's zfs-fuse pool: a plain share, a share with
Previous Versions (an hourly snapshot schedule) and a Time Machine share. For each, smbtorture runs the
suites ordinary Windows and macOS clients exercise against nasd's share, then against the stock smbd's
selftest shares on the same folder (see :mod:`nasd_testing.smbtorture`). The folder is emptied between
runs, so what one server leaves cannot decide the other's result. Subtests that fail on both servers are
listed below with their reason, as Samba's ``selftest/knownfail`` lists them for 4.17; one that starts
passing on nasd must leave the list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nasd_testing.serve import poll, serving
from nasd_testing.smb import free_port
from nasd_testing.smbtorture import REPORT, STOCK_SHARES, SUITES, StockSmbd, SuiteResult, client_conf, panics, run_suite

PASSWORD = "s3cret-Torture"
KINDS = ("plain", "versions", "timemachine")

#: subtests that fail on the stock smbd and on nasd alike, and why; those marked zfs-fuse fail only there (the
#: VM tier runs this test on OpenZFS too, where they must pass)
KNOWN_FAIL = {
    "smb2.rw.invalid": "expects DISK_FULL for a write at an offset near 2^63; ZFS takes the sparse write",
    "smb2.create.gentest": "Samba 4.17 knownfail (create options Windows refuses)",
    "smb2.create.blob": "Samba 4.17 knownfail (create contexts)",
    "smb2.create.open": "Samba 4.17 knownfail (file attributes on open)",
    "smb2.create.quota-fake-file": "Samba 4.17 knownfail (the $Extend\\$Quota pseudo-file is for admins)",
    "smb2.streams.rename": "Samba 4.17 knownfail (renaming a stream while the base file is open)",
    "smb2.streams.rename2": "Samba 4.17 knownfail (renaming a stream while the base file is open)",
    "smb2.streams.attributes2": "zfs-fuse: Samba 4.17 knownfail for streams_xattr (a stream's own timestamps) "
                                "where xattr_tdb keeps the streams",
    "smb2.durable-open.delete_on_close1": "allocation size: ZFS reports a block for an empty file",
    "smb2.durable-open.delete_on_close2": "Samba 4.17 knownfail",
    "smb2.durable-open.file-position": "allocation size: ZFS reports a block for an empty file",
    "smb2.durable-open.alloc-size": "allocation size: ZFS rounds to its own block size",
    "smb2.durable-v2-open.app-instance": "Samba 4.17 knownfail (app instance ids)",
}


def known_fail(on_zfs_fuse: bool) -> dict[str, str]:
    return {t: why for t, why in KNOWN_FAIL.items() if on_zfs_fuse or not why.startswith("zfs-fuse:")}


def qualified(suite: str, subtest: str) -> str:
    """smbtorture names ``smb2.ioctl.shadow_copy``'s one subtest ``shadow_copy``: one name for both."""
    return suite if suite.endswith("." + subtest) else f"{suite}.{subtest}"


def manifests(pool_env, folder: Path, identity_root: Path, secret: str) -> Path:
    d = {"apiVersion": "nasd.io/v1alpha1"}
    docs = [pool_env.pool_manifest(size="768Mi"),
            d | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}},
            d | {"kind": "NASUser", "metadata": {"name": "torture"},
                 "spec": {"directory": "local", "uid": 2001, "passwordSecretRef": {"file": secret}}}]
    for kind in KINDS:
        docs.append(pool_env.dataset_manifest(kind, owner={"uid": 2001, "mode": "0755"}))
        smb = {"validUsers": ["torture"]}
        if kind == "timemachine":
            smb["timeMachine"] = {"enabled": True, "maxSize": "256Mi"}
        docs.append(d | {"kind": "NASShare", "metadata": {"name": kind},
                         "spec": {"protocol": "smb", "dataset": kind, "smb": smb}})
    docs.append(d | {"kind": "ZSnapshotSchedule", "metadata": {"name": "versions-hourly"},
                     "spec": {"datasets": ["versions"], "schedule": {"cron": "0 * * * *"},
                              "retention": {"hourly": 24}}})
    return pool_env.write_manifests(folder, *docs)


def empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name == ".zfs":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def expose_first_snapshot(dataset: str, mountpoint: Path) -> str:
    """zfs-fuse has no .zfs/snapshot: the schedule's snapshot as a read-only clone mounted where OpenZFS shows
    it (nasd's settings are those of OpenZFS; it never relies on this). Returns the snapshot's name."""
    def first() -> str | None:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset],
                             capture_output=True, text=True).stdout.split()
        return out[0].split("@", 1)[1] if out else None
    name = poll(first, timeout=60, what="the schedule's first snapshot")
    if not (mountpoint / ".zfs" / "snapshot").is_dir():
        subprocess.run(["zfs", "clone", "-o", "readonly=on", "-o", f"mountpoint={mountpoint}/.zfs/snapshot/{name}",
                        f"{dataset}@{name}", f"{dataset.split('/')[0]}/pv-clone"], check=True)
    return name


@pytest.fixture
def conformance_report(request):
    """Lines for the summary at the end of the run (pass counts per kind and suite)."""
    lines: list[str] = []
    yield lines
    request.config.stash.setdefault(REPORT, []).extend(lines)


@pytest.mark.zfs
def test_nasd_shares_pass_every_smbtorture_subtest_a_stock_selftest_smbd_passes_and_nothing_panics(
        pool_env, smb_env, tmp_path, conformance_report):
    if not shutil.which("smbtorture"):
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail("smbtorture is not installed (make test installs samba-testsuite)")
        pytest.skip("smbtorture is not installed (apt-get install samba-testsuite)")
    folder = tmp_path / "manifests"
    manifests(pool_env, folder, smb_env.identity_root, smb_env.secret("torture", PASSWORD))
    conf = client_conf(tmp_path / "client.conf")
    pool = pool_env.pool_name()
    stock = StockSmbd(root=tmp_path / "stock", port=free_port(), env=smb_env.env())
    with serving(pool_env, tmp_path, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                              "smb": smb_env.settings(), "timemachine": {"mdns": "off"}}) as serve:
        server = serve(folder)
        for kind in KINDS:
            poll(lambda: server.ready("nasshare", kind), timeout=90, what=f"share {kind} Ready")
        paths = {kind: pool_env.mount_root / pool / kind for kind in KINDS}
        snapshot = expose_first_snapshot(f"{pool}/versions", paths["versions"])
        described = yaml.safe_load(server.cli("get", "nasshare", "plain", "-o", "yaml").stdout)
        assert {"namedStreams", "dosAttributes", "ntACLs", "durableHandles"} <= set(
            described["status"]["clientFeatures"]), described["status"]

        stock.config({kind: (str(path), "GMT-%Y.%m.%d-%H.%M.%S" if kind == "versions" else None)
                      for kind, path in paths.items()})
        stock.add_user("torture", PASSWORD)
        stock.start()
        try:
            outcome: dict[tuple[str, str], tuple[SuiteResult, set[str]]] = {}
            for kind in KINDS:
                for suite in SUITES:
                    empty(paths[kind])
                    ours = run_suite(kind, smb_env.port, "torture", PASSWORD, suite, conf)
                    theirs: set[str] = set()
                    shares = STOCK_SHARES[suite] + (("vfs_fruit_timemachine",) if kind == "timemachine" else ())
                    for share in shares:
                        if share == "shadow_write" and kind != "versions":
                            continue
                        empty(paths[kind])
                        theirs |= run_suite(f"{kind}-{share}", stock.port, "torture", PASSWORD, suite, conf).passed
                    outcome[(kind, suite)] = (ours, theirs)
        finally:
            stock.stop()
        nasd_log = server.output()

    known = known_fail(on_zfs_fuse=not pool_env.daemon.kernel)
    missing, unexplained, listed_pass = [], [], set(known)
    for (kind, suite), (ours, theirs) in outcome.items():
        conformance_report.append(f"{kind:12} {suite:24} nasd {len(ours.passed):3} passed   stock {len(theirs):3}")
        missing += [f"{kind}: {qualified(suite, t)}\n{ours.output[-2000:]}" for t in sorted(theirs - ours.passed)]
        for t in sorted(ours.failed):
            name = qualified(suite, t)
            if name not in known and t not in theirs:
                unexplained.append(f"{kind}: {name}")
            listed_pass.discard(name)
    panicked = panics(smb_env.root / "state" / "smb" / "log") + panics(stock.root / "log")
    assert not missing, "nasd fails what the stock smbd passes:\n" + "\n".join(missing)
    assert not unexplained, f"failing on both servers, not listed in KNOWN_FAIL with a reason: {unexplained}"
    assert not listed_pass, f"listed in KNOWN_FAIL but passing on every nasd share (take them off): {listed_pass}"
    assert not panicked, "smbd panicked:\n" + "\n".join(panicked[:20])
    assert "Traceback" not in nasd_log
    assert snapshot  # (the Previous Versions share had a version to enumerate)
