"""How much memory the daemon holds at scale, and whether it grows over no-op passes, measured on the real
``nasd serve`` process with real zfs-fuse, smbd and exportfs.

    .venv/bin/python bench/memory.py [--scale 1] [--passes 1000] [--tracemalloc]   (``make bench-memory``: full scale)

Starts a private zfs-fuse in a private mount namespace (as the tests do, see testing/src/nasd_testing/zfs.py),
tmpfs over /etc/exports.d and /var/lib/nfs (nasd_testing.nfs), a private identity root with one user resolved
through nss_wrapper (nasd_testing.smb), and ``nasd serve`` as a subprocess with, in its manifest folder, at
``--scale 1``:

  - one ZPool on a sparse file, a NASDirectory and a NASUser;
  - 1,000 ZDatasets ``ds0``..``ds999``;
  - 1,000 NASShares smb and 1,000 NASShares nfs: one of each on every dataset (``smb<i>`` and ``nfs<i>`` on
    ``ds<i>``; an NFS export is one path, so the exports need a dataset each, and the SMB shares sit on the same
    ones), served by the supervised smbd on a free loopback port and put in effect by the real ``exportfs -ra``;
  - 10,000 snapshots: 10 per dataset, made with ``zfs snapshot -r -o nasd.io:schedule=bench POOL@NAME`` once
    every dataset is Ready, named in the schedule's format at the last ten minutes, and then a ZSnapshotSchedule
    ``bench`` over every dataset (interval 1d, keepLast 24): nasd lists and keeps them all as that schedule's
    (status.snapshots = 10,000), takes none (the next tick is tomorrow) and prunes none.

zfs-fuse mounts at most 1,000 file systems and is stuck after that (see /work/shared/notes/real-components.md):
datasets from ``--mounted-max`` (900) on are made with ``canmount=off``, and their mountpoint folders (empty, in
the pool's root file system) made by this benchmark, so that their shares and exports have a path. nasd
observes, plans and holds them like the others.

Once everything is Ready and the schedule lists every snapshot, the no-op passes are the daemon's own periodic
resync, back to back (``resyncSeconds`` 0.01; the snapshot listing is refreshed every ``--relist`` s, as a user
would set ``relistSeconds``); the passes are counted in ``/metrics``. The daemon's VmRSS and VmHWM
(/proc/PID/status) are read once it settled (after ``--warmup`` passes) and again after ``--passes`` more, with
samples in between; the commands run meanwhile are counted (a no-op pass mutates nothing).

``--tracemalloc`` runs the daemon under tracemalloc (a wrapper around ``nasd.cli.main`` in this file; SIGUSR2
dumps a snapshot): it prints what holds the most memory at the baseline and what grew over the passes, by
file:line (with ``--tm-frames 25`` also the line of nasd's own code that led to each allocation). Its RSS
figures are inflated by tracemalloc itself; measure RSS without it. ``--keep-spawns N`` (the same wrapper)
makes the daemon's runner keep only its last N records of the commands it ran, to measure what bounding them
in nasd/runner.py would save.

Prints a table of figures and targets. Figures never make it exit non-zero; it does so only when the benchmark
itself cannot run (no ZFS, no Samba, not root, the daemon not converging). Everything is cleaned up: the daemon
is stopped with SIGTERM (it stops its smbd), the pool destroyed, the private zfs-fuse stopped, the temporary
folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from common import BenchError, table, write_docs, yes
from nasd_testing.nfs import _private_files
from nasd_testing.smb import free_port, make_identity_root
from nasd_testing.zfs import ZFSUnavailable, _enter_private_mount_namespace, cleanup_tree, start_for_pool

API = "/apis/nasd.io/v1alpha1"
USER, UID, PASSWORD = "bench", 2001, "b3nch-" + secrets.token_hex(6)
SCHEDULE = "bench"
SCHEDULE_PROPERTY = "nasd.io:schedule"
FORMAT = "GMT-%Y.%m.%d-%H.%M.%S"
FULL_DATASETS = 1000
SNAPSHOTS_PER_DATASET = 10
TARGET_RSS_MIB = 100.0
TARGET_GROWTH_MIB = 1.0
TARGET_PASSES = 1000
METRIC = re.compile(r'^(\w+)(?:\{([^}]*)\})?\s+(\S+)$')
#: commands a no-op pass may run: reads (pdbedit lists the users; its verb in the metrics is its -s CONF)
READ_VERBS = {("zfs", "list"), ("zfs", "get"), ("zpool", "status"), ("zpool", "list"), ("zpool", "get")}
READ_PROGRAMS = {"pdbedit", "testparm"}

#: ``nasd`` with diagnostics: under tracemalloc if $BENCH_TM_PREFIX is set (SIGUSR2 writes a snapshot to
#: $BENCH_TM_PREFIX<n>.snap, renamed into place); keeping only the last $BENCH_KEEP_SPAWNS of the runner's
#: records of the commands it ran if that is set (what a fix in nasd/runner.py would do, measured without it)
WRAPPED_NASD = """
import os, signal, sys
if os.environ.get("BENCH_TM_PREFIX"):
    import tracemalloc
    tracemalloc.start(int(os.environ.get("BENCH_TM_FRAMES", "1")))
    count = [0]
    def dump(*_):
        count[0] += 1
        path = os.environ["BENCH_TM_PREFIX"] + str(count[0]) + ".snap"
        tracemalloc.take_snapshot().dump(path + ".part")
        os.rename(path + ".part", path)
    signal.signal(signal.SIGUSR2, dump)
if os.environ.get("BENCH_KEEP_SPAWNS"):
    from nasd.runner import Runner
    keep = int(os.environ["BENCH_KEEP_SPAWNS"])
    record = Runner._record
    def _record(self, spawn):
        record(self, spawn)
        if len(self.spawns) > keep:
            del self.spawns[:len(self.spawns) - keep]
    Runner._record = _record
from nasd.cli import main
sys.argv[0] = "nasd"
sys.exit(main())
"""


# -- manifests ------------------------------------------------------------------------------------


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def base_docs(pool: str, vdev: Path, secret: Path) -> list[dict[str, Any]]:
    return [
        doc("ZPool", pool, {"vdevs": [{"type": "stripe", "devices": [str(vdev)]}], "files": {str(vdev): "4Gi"}}),
        doc("NASDirectory", "local", {"type": "local"}),
        doc("NASUser", USER, {"directory": "local", "uid": UID, "passwordSecretRef": {"file": str(secret)}}),
    ]


def dataset_docs(pool: str, n: int, mounted_max: int) -> list[dict[str, Any]]:
    return [doc("ZDataset", f"ds{i}", {"pool": pool, "path": f"ds{i}",
                                       "properties": {"atime": "off", **({"canmount": "off"} if i >= mounted_max
                                                                        else {})}})
            for i in range(n)]


def smb_docs(n: int) -> list[dict[str, Any]]:
    return [doc("NASShare", f"smb{i}", {"protocol": "smb", "dataset": f"ds{i}", "smb": {"validUsers": [USER]}})
            for i in range(n)]


def nfs_docs(n: int) -> list[dict[str, Any]]:
    # zfs-fuse gives NFS no stable file handles: every export names its fsid
    return [doc("NASShare", f"nfs{i}", {"protocol": "nfs", "dataset": f"ds{i}", "nfs": {
        "fsid": i + 1, "clients": [{"hosts": ["127.0.0.1"], "access": "rw"}]}}) for i in range(n)]


def schedule_doc(n: int) -> dict[str, Any]:
    return doc("ZSnapshotSchedule", SCHEDULE, {"datasets": [f"ds{i}" for i in range(n)],
                                               "schedule": {"interval": "1d"}, "format": FORMAT,
                                               "retention": {"keepLast": 24}})


# -- the daemon -----------------------------------------------------------------------------------


@dataclass
class Metrics:
    passes: int = 0
    pass_seconds: float = 0.0
    commands: dict[tuple[str, str], int] = field(default_factory=dict)


def parse_metrics(text: str) -> Metrics:
    m = Metrics()
    for line in text.splitlines():
        match = METRIC.match(line.strip())
        if not match:
            continue
        name, labels, value = match.groups()
        if name == "nasd_commands_total":
            program = re.search(r'program="([^"]*)"', labels or "")
            verb = re.search(r'verb="([^"]*)"', labels or "")
            if program:
                m.commands[(program.group(1), verb.group(1) if verb else "")] = int(float(value))
        elif name == "nasd_reconcile_duration_seconds_count":
            m.passes = int(float(value))
        elif name == "nasd_reconcile_duration_seconds_sum":
            m.pass_seconds = float(value)
    return m


def command_delta(a: Metrics, b: Metrics) -> dict[tuple[str, str], int]:
    return {k: b.commands.get(k, 0) - a.commands.get(k, 0) for k in set(a.commands) | set(b.commands)
            if b.commands.get(k, 0) != a.commands.get(k, 0)}


@dataclass
class Memory:
    rss: int  # bytes
    hwm: int


class Daemon:
    """``nasd serve`` as a subprocess (under tracemalloc if asked), and its API over the unix socket."""

    def __init__(self, root: Path, config: Path, manifests: Path, env: dict[str, str], traced: bool,
                 keep_spawns: int | None, tm_frames: int = 1):
        self.socket = root / "nasd.sock"
        self.log_path = root / "nasd.log"
        self.tm_prefix = root / "tracemalloc-"
        self.tm_dumps = 0
        self._log = open(self.log_path, "wb")
        args = ["serve", "--manifests", str(manifests), "--config", str(config), "--socket", str(self.socket)]
        if traced or keep_spawns is not None:
            argv = [sys.executable, "-c", WRAPPED_NASD, *args]
            if traced:
                env = {**env, "BENCH_TM_PREFIX": str(self.tm_prefix), "BENCH_TM_FRAMES": str(tm_frames)}
            if keep_spawns is not None:
                env = {**env, "BENCH_KEEP_SPAWNS": str(keep_spawns)}
        else:
            nasd = Path(sys.executable).with_name("nasd")
            if not nasd.exists():
                raise BenchError(f"{nasd} is missing: run make venv")
            argv = [str(nasd), *args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True, env=env)
        self.session: aiohttp.ClientSession | None = None

    async def open(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            self.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"nasd serve did not open {self.socket} within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket)),
                                             timeout=aiohttp.ClientTimeout(total=600))

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"nasd serve exited with status {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def memory(self) -> Memory:
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
        return Memory(fields["VmRSS"], fields["VmHWM"])

    async def get(self, path: str) -> Any:
        assert self.session is not None
        async with self.session.get("http://nasd" + path) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise BenchError(f"GET {path}: HTTP {resp.status}: {text[:300]}")
            return json.loads(text) if resp.content_type == "application/json" else text

    async def metrics(self) -> Metrics:
        return parse_metrics(await self.get("/metrics"))

    async def items(self, plural: str) -> list[dict[str, Any]]:
        return (await self.get(f"{API}/{plural}"))["items"]

    async def not_ready(self, plural: str) -> list[dict[str, Any]]:
        return [i for i in await self.items(plural) if not ready(i)]

    async def tracemalloc_dump(self, timeout: float = 300) -> tracemalloc.Snapshot:
        self.tm_dumps += 1
        path = Path(f"{self.tm_prefix}{self.tm_dumps}.snap")
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while not path.exists():
            self.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon wrote no tracemalloc snapshot within {timeout:.0f} s")
            await asyncio.sleep(0.2)
        return tracemalloc.Snapshot.load(str(path))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                print("warning: nasd serve did not stop within 60 s of SIGTERM; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def ready(item: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", []))


def describe(items: list[dict[str, Any]], limit: int = 5) -> str:
    return " | ".join(f"{i['kind']}/{i['metadata']['name']}: " + "; ".join(
        f"{c.get('reason', '')} {c.get('message', '')}" for c in i.get("status", {}).get("conditions", []))
        for i in items[:limit])


async def wait_ready(daemon: Daemon, plurals: list[str], what: str, timeout: float, expect: int) -> float:
    """Wait until every object of ``plurals`` is Ready and there are ``expect`` of them; the seconds it took."""
    t0 = time.monotonic()
    next_note = t0 + 15
    while True:
        daemon.alive()
        items = [i for p in plurals for i in await daemon.items(p)]
        pending = [i for i in items if not ready(i)]
        if not pending and len(items) >= expect:
            return time.monotonic() - t0
        if time.monotonic() > t0 + timeout:
            raise BenchError(f"{what}: not Ready after {timeout:.0f} s ({len(items)} objects): {describe(pending)}")
        if time.monotonic() > next_note:
            print(f"  {what}: {len(items) - len(pending)}/{expect} Ready ({time.monotonic() - t0:.0f} s)", flush=True)
            next_note = time.monotonic() + 15
        await asyncio.sleep(2)


async def wait_passes(daemon: Daemon, at_least: int, timeout: float) -> Metrics:
    deadline = time.monotonic() + timeout
    while True:
        daemon.alive()
        m = await daemon.metrics()
        if m.passes >= at_least:
            return m
        if time.monotonic() > deadline:
            raise BenchError(f"the daemon ran {m.passes} of {at_least} passes within {timeout:.0f} s")
        await asyncio.sleep(0.5)


# -- snapshots ------------------------------------------------------------------------------------


def make_snapshots(pool: str, per_dataset: int) -> tuple[list[str], float]:
    """``per_dataset`` recursive snapshots of the pool, named in the schedule's format at the last minutes, with
    the schedule's property: every dataset gets ``per_dataset`` snapshots nasd takes as the schedule's."""
    now = int(time.time()) // 60 * 60
    names = [time.strftime(FORMAT, time.gmtime(now - 60 * (per_dataset - k))) for k in range(per_dataset)]
    t0 = time.monotonic()
    for name in names:
        r = subprocess.run(["zfs", "snapshot", "-r", "-o", f"{SCHEDULE_PROPERTY}={SCHEDULE}", f"{pool}@{name}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"zfs snapshot -r {pool}@{name}: {r.stderr.strip()}")
    return names, time.monotonic() - t0


# -- tracemalloc ----------------------------------------------------------------------------------


def _keep(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__),
                                   tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                                   tracemalloc.Filter(False, "<string>")])


def where(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def tracemalloc_report(base: tracemalloc.Snapshot, end: tracemalloc.Snapshot, top: int = 15) -> list[str]:
    base, end = _keep(base), _keep(end)
    total = sum(s.size for s in base.statistics("filename"))
    lines = [f"tracemalloc (traced Python allocations; at the baseline {total / 2**20:.1f} MiB in all):",
             "  largest at the baseline, by line:"]
    for s in base.statistics("lineno")[:top]:
        frame = s.traceback[0]
        lines.append(f"    {s.size / 2**20:7.2f} MiB {s.count:8d} blocks  {where(frame.filename)}:{frame.lineno}")
    lines.append("  largest at the baseline, by file:")
    for s in base.statistics("filename")[:10]:
        lines.append(f"    {s.size / 2**20:7.2f} MiB {s.count:8d} blocks  {where(s.traceback[0].filename)}")
    if base.traceback_limit > 1:  # the allocation's line and the innermost line of nasd's own that led to it
        lines.append("  largest at the baseline, by line and the nasd line that led to it:")
        for s in base.statistics("traceback")[:top]:
            frame = s.traceback[-1]  # (frames go from the oldest to the allocation)
            ours = next((f for f in reversed(s.traceback[:-1]) if "/nasd" in f.filename), None)
            via = f"  <- {where(ours.filename)}:{ours.lineno}" if ours is not None else ""
            lines.append(f"    {s.size / 2**20:7.2f} MiB {s.count:8d} blocks  {where(frame.filename)}:{frame.lineno}{via}")
    diff = end.compare_to(base, "lineno")
    grew = sum(d.size_diff for d in diff)
    lines.append(f"  grew over the passes: {grew / 2**20:+.2f} MiB in all; the largest changes, by line:")
    for d in sorted(diff, key=lambda d: -abs(d.size_diff))[:top]:
        frame = d.traceback[0]
        lines.append(f"    {d.size_diff / 2**20:+7.2f} MiB {d.count_diff:+8d} blocks (now {d.size / 2**20:.2f} MiB)  "
                     f"{where(frame.filename)}:{frame.lineno}")
    return lines


# -- the run --------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


async def run(args: argparse.Namespace, root: Path, pool: str) -> str:
    n = max(1, round(FULL_DATASETS * args.scale))
    mounted_max = min(n, args.mounted_max)
    identity = make_identity_root(root / "identity")
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(mode=0o700)
    secret = secrets_dir / USER
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o600)
    (root / "mnt").mkdir()
    manifests = root / "manifests"
    write_docs(manifests / "base.yaml", base_docs(pool, root / "vdevs" / f"{pool}-0.img", secret))
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "stateDir": str(root / "state"),
        "resyncSeconds": args.resync,
        "plugins": {
            "zfs": {"mountRoot": str(root / "mnt")},
            "smb": {"port": free_port(), "interfaces": ["lo"], "identityRoot": str(identity), "hostName": "127.0.0.1"},
            "nfs": {"hostName": "nas.test"},
            "snapshots": {"relistSeconds": args.relist},
        },
    }))
    library = [*Path("/usr/lib").glob("*/libnss_wrapper.so*"), *Path("/usr/lib").glob("libnss_wrapper.so*")][0]
    env = {**os.environ, "LD_PRELOAD": str(library), "NSS_WRAPPER_PASSWD": str(identity / "etc" / "passwd"),
           "NSS_WRAPPER_GROUP": str(identity / "etc" / "group")}
    daemon = Daemon(root, config, manifests, env, args.tracemalloc, args.keep_spawns, args.tm_frames)
    try:
        return await measure(args, daemon, root, pool, manifests, n, mounted_max)
    finally:
        await daemon.close()
        rc = daemon.stop()
        if rc not in (0, None):
            print(f"warning: nasd serve exited with status {rc}:\n{daemon.log_tail()}", file=sys.stderr)


async def measure(args: argparse.Namespace, daemon: Daemon, root: Path, pool: str, manifests: Path, n: int,
                  mounted_max: int) -> str:
    figures: dict[str, Any] = {"n": n, "mounted": mounted_max}
    t0 = time.monotonic()
    await daemon.open()
    await wait_ready(daemon, ["zpools", "nasusers"], "pool and user", args.ready_timeout, 2)
    figures["empty"] = daemon.memory()
    # the folders of the datasets that are not mounted (zfs-fuse's limit), in the pool's root file system
    for i in range(mounted_max, n):
        (root / "mnt" / pool / f"ds{i}").mkdir(parents=True, exist_ok=True)
    write_docs(manifests / "datasets.yaml", dataset_docs(pool, n, mounted_max))
    write_docs(manifests / "shares-smb.yaml", smb_docs(n))
    write_docs(manifests / "shares-nfs.yaml", nfs_docs(n))
    print(f"{n} datasets ({mounted_max} mounted), {n} SMB shares, {n} NFS exports written", flush=True)
    figures["ready_seconds"] = await wait_ready(daemon, ["zdatasets", "nasshares"], "datasets and shares",
                                                args.ready_timeout, 3 * n)
    print(f"  all Ready in {figures['ready_seconds']:.0f} s; RSS {mib(daemon.memory().rss)} MiB", flush=True)
    figures["before_snapshots"] = daemon.memory()
    names, figures["snapshot_seconds"] = make_snapshots(pool, args.snapshots)
    write_docs(manifests / "schedule.yaml", [schedule_doc(n)])
    want = n * args.snapshots
    t1 = time.monotonic()
    while True:
        daemon.alive()
        items = await daemon.items("zsnapshotschedules")
        if items and ready(items[0]) and items[0].get("status", {}).get("snapshots") == want:
            break
        if time.monotonic() > t1 + args.ready_timeout:
            raise BenchError(f"the schedule does not list {want} snapshots: "
                             f"{json.dumps(items[0].get('status') if items else None)[:400]}")
        await asyncio.sleep(2)
    figures["listed_seconds"] = time.monotonic() - t1
    print(f"  {want} snapshots made in {figures['snapshot_seconds']:.0f} s and listed by the schedule "
          f"{figures['listed_seconds']:.0f} s later", flush=True)
    figures["setup_seconds"] = time.monotonic() - t0

    # settle: a few passes (the schedule's Previous Versions reach smb.conf, one reload), then the baseline
    m = await daemon.metrics()
    m = await wait_passes(daemon, m.passes + args.warmup, args.ready_timeout)
    base_metrics = m
    base = daemon.memory()
    base_tm = await daemon.tracemalloc_dump() if args.tracemalloc else None
    print(f"  baseline after {m.passes} passes: RSS {mib(base.rss)} MiB, HWM {mib(base.hwm)} MiB", flush=True)
    samples: list[tuple[int, Memory]] = [(0, base)]
    step = max(1, args.passes // 10)
    t2 = time.monotonic()
    for k in range(1, 11):
        target = base_metrics.passes + min(args.passes, k * step)
        m = await wait_passes(daemon, target, args.pass_timeout)
        mem = daemon.memory()
        if m.passes - base_metrics.passes == samples[-1][0]:
            continue
        samples.append((m.passes - base_metrics.passes, mem))
        print(f"  {m.passes - base_metrics.passes} no-op passes: RSS {mib(mem.rss)} MiB "
              f"({(mem.rss - base.rss) / 2**20:+.2f}), {time.monotonic() - t2:.0f} s", flush=True)
        if m.passes - base_metrics.passes >= args.passes:
            break
    end_metrics = m
    end = daemon.memory()
    end_tm = await daemon.tracemalloc_dump() if args.tracemalloc else None
    figures.update(base=base, end=end, samples=samples, base_metrics=base_metrics, end_metrics=end_metrics,
                   commands=command_delta(base_metrics, end_metrics), noop_seconds=time.monotonic() - t2)
    schedule = (await daemon.items("zsnapshotschedules"))[0]
    figures["schedule_snapshots"] = schedule.get("status", {}).get("snapshots")
    figures["not_ready"] = [i for p in ("zpools", "zdatasets", "nasshares", "zsnapshotschedules")
                            for i in await daemon.not_ready(p)]
    lines = report(args, figures)
    if base_tm is not None and end_tm is not None:
        lines += ["", *tracemalloc_report(base_tm, end_tm)]
    return "\n".join(lines)


def report(args: argparse.Namespace, f: dict[str, Any]) -> list[str]:
    n, base, end = f["n"], f["base"], f["end"]
    passes = f["end_metrics"].passes - f["base_metrics"].passes
    growth = end.rss - base.rss
    per_1000 = growth * 1000 / passes if passes else 0.0
    mutating = {k: v for k, v in f["commands"].items() if k not in READ_VERBS and k[0] not in READ_PROGRAMS}
    pass_s = (f["end_metrics"].pass_seconds - f["base_metrics"].pass_seconds) / max(passes, 1)
    full = n == FULL_DATASETS and args.snapshots == SNAPSHOTS_PER_DATASET
    rows = [
        ("daemon VmRSS at the baseline (MiB)", mib(base.rss), f"<= {TARGET_RSS_MIB:.0f}" if full else "(at scale 1)",
         yes(base.rss <= TARGET_RSS_MIB * 2**20) if full else ""),
        ("daemon VmHWM at the end (MiB)", mib(end.hwm), "", ""),
        (f"VmRSS growth over {passes} no-op passes (MiB)", f"{growth / 2**20:+.2f}",
         f"<= {TARGET_GROWTH_MIB:.0f} over {TARGET_PASSES}", yes(per_1000 <= TARGET_GROWTH_MIB * 2**20)),
        ("  the same, per 1,000 passes (MiB)", f"{per_1000 / 2**20:+.2f}", f"<= {TARGET_GROWTH_MIB:.0f}",
         yes(per_1000 <= TARGET_GROWTH_MIB * 2**20)),
        ("mutating commands in the no-op passes", str(sum(mutating.values())), "0", yes(not mutating)),
        ("objects not Ready at the end", str(len(f["not_ready"])), "0", yes(not f["not_ready"])),
    ]
    lines = [
        f"nasd memory benchmark (scale {args.scale:g}): {n} ZDatasets ({f['mounted']} mounted, {n - f['mounted']} "
        f"canmount=off), {n} SMB shares and {n} NFS exports (one of each per dataset), {n * args.snapshots} "
        f"snapshots ({args.snapshots} per dataset, listed by ZSnapshotSchedule {SCHEDULE}: "
        f"{f['schedule_snapshots']}); {passes} no-op passes (resync every {args.resync:g} s, snapshot relist "
        f"every {args.relist:g} s){'; under tracemalloc (RSS inflated)' if args.tracemalloc else ''}"
        f"{f'; the runner keeping its last {args.keep_spawns} spawns only' if args.keep_spawns is not None else ''}",
        "",
        table(rows),
        "",
        f"RSS (MiB): pool only {mib(f['empty'].rss)}; all datasets and shares Ready {mib(f['before_snapshots'].rss)}; "
        f"with the snapshots listed (baseline) {mib(base.rss)}; after the passes {mib(end.rss)} "
        f"(HWM {mib(end.hwm)})",
        "RSS over the passes (passes: MiB): " + ", ".join(f"{p}: {mib(m.rss)}" for p, m in f["samples"]),
        f"no-op passes: {passes} in {f['noop_seconds']:.0f} s, {pass_s:.3f} s per pass (metrics); commands run "
        "meanwhile: " + (", ".join(f"{p} {v if p not in READ_PROGRAMS else ''} {c}".replace("  ", " ")
                               for (p, v), c in sorted(f["commands"].items())) or "none"),
        f"setup: Ready in {f['ready_seconds']:.0f} s, snapshots made in {f['snapshot_seconds']:.0f} s and listed "
        f"{f['listed_seconds']:.0f} s later; {f['setup_seconds']:.0f} s in all",
    ]
    if f["not_ready"]:
        lines.append("not Ready: " + describe(f["not_ready"]))
    misses = [r[0].strip() for r in rows if r[3] == "NO"]
    lines.append("targets not met: " + (", ".join(misses) if misses else "none"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="of 1,000 datasets, SMB shares and NFS exports and 10,000 snapshots [1]")
    parser.add_argument("--snapshots", type=int, default=SNAPSHOTS_PER_DATASET,
                        help=f"snapshots per dataset [{SNAPSHOTS_PER_DATASET}]")
    parser.add_argument("--passes", type=int, default=TARGET_PASSES, help=f"no-op passes measured [{TARGET_PASSES}]")
    parser.add_argument("--warmup", type=int, default=5, help="passes after the setup before the baseline [5]")
    parser.add_argument("--mounted-max", type=int, default=900,
                        help="datasets mounted at most; the others canmount=off (zfs-fuse: 1,000 mounts) [900]")
    parser.add_argument("--resync", type=float, default=0.01, help="the daemon's resyncSeconds [0.01]")
    parser.add_argument("--relist", type=float, default=300.0, help="the snapshots plugin's relistSeconds [300]")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the daemon under tracemalloc and print what holds and what grew, by file:line")
    parser.add_argument("--tm-frames", type=int, default=1,
                        help="with --tracemalloc: frames per allocation; more also name nasd's line that made it [1]")
    parser.add_argument("--keep-spawns", type=int, default=None, metavar="N",
                        help="diagnosis: the daemon keeps only its last N records of commands run (nasd.runner keeps "
                             "up to 10,000, each with its whole argv)")
    parser.add_argument("--ready-timeout", type=float, default=3600, help="for the setup, s [3600]")
    parser.add_argument("--pass-timeout", type=float, default=7200, help="for each tenth of the passes, s [7200]")
    args = parser.parse_args()
    if args.scale <= 0 or args.scale > 1 or args.passes < 1 or args.snapshots < 1 or args.mounted_max < 1:
        parser.error("--scale must be in (0, 1]; --passes, --snapshots and --mounted-max at least 1")
    if args.mounted_max > 900:
        parser.error("--mounted-max: zfs-fuse is stuck after 1,000 mounts; at most 900")
    if os.geteuid() != 0:
        print("error: the benchmark needs root (ZFS, smbd, exportfs, a private mount namespace)", file=sys.stderr)
        return 1
    missing = [p for p in ("smbd", "smbclient", "smbcontrol", "testparm", "pdbedit", "smbpasswd", "exportfs")
               if not shutil.which(p, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if missing:
        print(f"error: not installed: {', '.join(missing)} (make system-packages)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds like Ctrl-C: everything is stopped
    root = Path(tempfile.mkdtemp(prefix="nasd-bench-mem-"))
    os.chmod(root, 0o711)  # smbd, acting as the share's user, must reach the mountpoints below
    try:
        zfs, pool = start_for_pool(root, "mem")
        _enter_private_mount_namespace()  # (zfs-fuse's start entered it already; kernel ZFS: not yet)
        _private_files(root / "nfs-files")
    except (ZFSUnavailable, subprocess.CalledProcessError) as e:
        print(f"error: cannot start ZFS or make the NFS files private: {e}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return 1
    status = 0
    try:
        print(f"{'kernel ZFS' if zfs.kernel else 'private zfs-fuse (pid %s)' % zfs.pid}; pool {pool} in {root}",
              flush=True)
        print(asyncio.run(run(args, root, pool)))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 1
    finally:
        try:
            for pid in leftover_samba(root):  # samba-dcerpcd and rpcd_* outlive smbd
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            zfs.stop()
        finally:
            cleanup_tree(root)
    return status


def leftover_samba(root: Path) -> list[int]:
    """Samba processes still running on this run's smb.conf."""
    conf = str(root / "state" / "smb" / "smb.conf")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")]
            except OSError:
                continue
            if any(a in (conf, f"--configfile={conf}") for a in args):
                pids.append(int(entry.name))
    return pids


if __name__ == "__main__":
    sys.exit(main())
