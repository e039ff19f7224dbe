"""`nasd serve` killed with SIGKILL at seeded random moments, again and again, while everything converges: a
pool, datasets, a local user and group, SMB and NFS shares, a snapshot schedule and a restore, with a client
writing files into the datasets all along. After the last start everything is Ready, every file the client
wrote is there, one smbd (the new nasd's child) serves the shares, and a SIGTERM leaves no process behind.

The seed is printed; NASD_KILL_SEED=<seed> repeats a run, NASD_KILLS=<n> sets how many kills (20 in CI)."""

from __future__ import annotations

import os
import shutil
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from nasd_testing.serve import Server, poll, serving

from nasd_testing.processes import main_smbds, samba_processes

pytestmark = pytest.mark.zfs
PASSWORD = "s3cret-Alice"
KINDS = ("zpool", "zdataset", "nasdirectory", "nasgroup", "nasuser", "nasshare", "zsnapshotschedule",
         "zsnapshotrestore")
DATASETS = [f"d{i}" for i in range(6)]
SMB_SHARES = DATASETS[:3]
NFS_SHARES = DATASETS[3:5]


def manifests(pool_env, smb_env) -> list[dict]:
    d = {"apiVersion": "nasd.io/v1alpha1"}
    docs = [pool_env.pool_manifest(), *smb_env.local_users(alice=(2001, PASSWORD)),
            d | {"kind": "NASGroup", "metadata": {"name": "staff"}, "spec": {"directory": "local", "gid": 3001}}]
    for i, name in enumerate(DATASETS):
        docs.append(pool_env.dataset_manifest(name, owner={"uid": 2001, "gid": 3001, "mode": "0775"},
                                              properties={"compression": "on" if i % 2 else "off", "atime": "off"}))
    for name in SMB_SHARES:
        docs.append(d | {"kind": "NASShare", "metadata": {"name": f"smb-{name}"},
                         "spec": {"protocol": "smb", "dataset": name, "smb": {"validUsers": ["alice"]}}})
    for i, name in enumerate(NFS_SHARES):
        docs.append(d | {"kind": "NASShare", "metadata": {"name": f"nfs-{name}"},
                         "spec": {"protocol": "nfs", "dataset": name,
                                  "nfs": {"fsid": 40 + i, "clients": [{"hosts": ["10.0.0.0/8"], "access": "rw"}]}}})
    docs.append(d | {"kind": "ZSnapshotSchedule", "metadata": {"name": "every-minute"},
                     "spec": {"datasets": [DATASETS[0]], "schedule": {"interval": "1m"},
                              "retention": {"keepLast": 3}}})
    docs.append(d | {"kind": "ZSnapshotRestore", "metadata": {"name": "yesterday"},
                     "spec": {"source": {"dataset": DATASETS[0], "selector": {"newest": True, "prefix": "GMT-"}},
                              "target": {"path": "restore/yesterday"},
                              "share": {"protocol": "smb", "name": "yesterday"}}})
    return docs


class Writer(threading.Thread):
    """A client writing numbered files into the mounted datasets (each closed and fsynced before it counts)."""

    def __init__(self, roots: list[Path]):
        super().__init__(daemon=True)
        self.roots = roots
        self.written: dict[Path, bytes] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for root in self.roots:
                if not os.path.ismount(root):
                    continue  # (not mounted yet: nasd has not made it)
                path = root / "client" / f"file-{n:05d}"
                data = f"client file {n} in {root.name}\n".encode() * 64
                try:
                    path.parent.mkdir(exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                except OSError:
                    continue  # (a dataset being mounted or changed right now: that write never counted)
                self.written[path] = data
                n += 1
            time.sleep(0.05)


def served_by(server: Server, marker: str) -> bool:
    """Whether exactly one smbd runs for the test, a child of ``server``."""
    smbds = main_smbds(marker)
    return len(smbds) == 1 and samba_processes(marker)[smbds[0]][1] == server.proc.pid


def all_ready(server: Server) -> list[str]:
    """Resources not Ready (kind/name reason), read through the API; [] when all are."""
    missing = []
    for kind in KINDS:
        result = server.cli("get", kind, "-o", "yaml")
        if result.returncode != 0:
            return [f"{kind}: {result.stderr.strip()}"]
        for item in yaml.safe_load(result.stdout).get("items", []):
            ready = next((c for c in item.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
            if ready.get("status") != "True":
                missing.append(f"{kind}/{item['metadata']['name']} {ready.get('reason')}: {ready.get('message')}")
    return missing


def test_nasd_killed_20_times_at_random_moments_converges_all_of_it_and_loses_no_client_file(
        pool_env, smb_env, nfs_exports, tmp_path):
    seed = int(os.environ.get("NASD_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
    kills = int(os.environ.get("NASD_KILLS", "20"))
    print(f"kill -9 loop: NASD_KILL_SEED={seed} NASD_KILLS={kills}")
    rng = random.Random(seed)
    folder = tmp_path / "manifests"
    docs = manifests(pool_env, smb_env)
    pool_env.write_manifests(folder, *docs)
    marker = str(smb_env.root)
    mounts = [pool_env.mount_root / pool_env.pool_name() / name for name in DATASETS]
    writer = Writer(mounts)
    writer.start()
    config = {"plugins": {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings(),
                          "nfs": nfs_exports.settings(), "timemachine": {"mdns": "off"}}}
    moments = []
    with serving(pool_env, tmp_path, **config) as start:
        try:
            for i in range(kills):
                server = start(folder)
                moment = rng.uniform(0.2, 4.0) if i % 4 else rng.uniform(0.0, 0.5)  # (early kills: mid-start)
                moments.append(round(moment, 2))
                time.sleep(moment)
                assert server.proc.poll() is None, server.output()[-3000:]
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait()
                # children die with it: no Samba process outlives a killed nasd
                poll(lambda: not samba_processes(marker), timeout=15, what=f"no Samba process after kill {i + 1}")
            print(f"killed after {moments} s")

            server = start(folder)
            try:
                # (statuses a killed nasd saved read Ready too: this one's smbd serving tells its pass ran)
                poll(lambda: served_by(server, marker) and not all_ready(server), timeout=120, interval=1,
                     what="every resource Ready")
            except AssertionError:
                raise AssertionError(f"not Ready after {kills} kills (NASD_KILL_SEED={seed}):\n"
                                     + "\n".join(all_ready(server))) from None
            time.sleep(1)  # the client writes on while it converges
        finally:
            writer.stop.set()
            writer.join()
        assert not all_ready(server)
        lost = [p for p, data in writer.written.items() if not p.exists() or p.read_bytes() != data]
        assert writer.written and not lost, f"{len(lost)} of {len(writer.written)} client files lost: {lost[:5]}"
        [smbd] = main_smbds(marker)
        assert samba_processes(marker)[smbd][1] == server.proc.pid  # the one smbd is the last nasd's child
        for name in SMB_SHARES:
            listing = smb_env.smbclient(f"smb-{name}", "alice", PASSWORD, "ls client/*")
            assert listing.returncode == 0 and "file-" in listing.stdout, listing.stdout + listing.stderr
        exported = nfs_exports.exported()
        for name in NFS_SHARES:
            assert str(pool_env.mount_root / pool_env.pool_name() / name) in exported
        snapshots = yaml.safe_load(server.cli("get", "zsnapshotrestore", "yesterday", "-o", "yaml").stdout)
        assert snapshots["status"]["clone"].endswith("/restore/yesterday")
        output = server.output()
        assert server.stop() == 0, output[-3000:]
    assert not samba_processes(marker), "Samba processes left after SIGTERM"
    assert "Traceback" not in output, output[output.index("Traceback") - 2000:][:5000]


@pytest.mark.parametrize("program", ["useradd", "groupadd"])
def test_nasd_killed_right_after_it_created_an_account_takes_the_account_as_its_own_at_the_next_start(
        pool_env, smb_env, tmp_path, program):
    """The window the random kills above once hit: the account made, the registry not written yet. Without the
    note nasd makes before it creates, the next nasd found "alice exists and was not created by nasd" for good."""
    real = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert real, f"{program} is not installed"
    wrapper, killed = tmp_path / program, tmp_path / f"{program}.killed"
    # the real program, then (once) SIGKILL of the nasd that ran it, still waiting for it (after a second: the
    # starter has seen nasd up by then)
    wrapper.write_text("#!/bin/sh\n"
                       f"'{real}' \"$@\" || exit $?\n"
                       f"[ -e '{killed}' ] || {{ touch '{killed}'; sleep 1; kill -9 $PPID; }}\n")
    wrapper.chmod(0o755)
    folder = tmp_path / "manifests"
    d = {"apiVersion": "nasd.io/v1alpha1"}
    pool_env.write_manifests(folder, pool_env.pool_manifest(), *smb_env.local_users(alice=(2001, PASSWORD)),
                             d | {"kind": "NASGroup", "metadata": {"name": "staff"},
                                  "spec": {"directory": "local", "gid": 3001, "members": ["alice"]}},
                             pool_env.dataset_manifest("home"),
                             d | {"kind": "NASShare", "metadata": {"name": "home"},
                                  "spec": {"protocol": "smb", "dataset": "home", "smb": {"validUsers": ["alice"]}}})
    config = {"plugins": {"zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings()},
              "programs": {program: str(wrapper)}}
    with serving(pool_env, tmp_path, **config) as start:
        server = start(folder)
        assert server.proc.wait(timeout=60) == -signal.SIGKILL, server.output()[-3000:]
        assert killed.exists()
        server = start(folder)
        poll(lambda: all(server.ready(kind, name) for kind, name in
                         [("NASUser", "alice"), ("NASGroup", "staff"), ("NASShare", "home")]),
             timeout=60, what="alice, staff and the share Ready")
        passwd = (smb_env.identity_root / "etc" / "passwd").read_text()
        assert [line.split(":")[2] for line in passwd.splitlines() if line.startswith("alice:")] == ["2001"]
        group = (smb_env.identity_root / "etc" / "group").read_text()
        assert [line.split(":")[2:] for line in group.splitlines() if line.startswith("staff:")] == [["3001", "alice"]]
        listing = smb_env.smbclient("home", "alice", PASSWORD, "ls")  # alice logs in: her Samba account is there
        assert listing.returncode == 0, listing.stdout + listing.stderr
        assert server.stop() == 0
    assert "Traceback" not in server.output()
