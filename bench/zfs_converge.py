"""How much work nasd does to converge many ZFS datasets, measured on real ZFS.

    .venv/bin/python bench/zfs_converge.py [--datasets N] [--rounds R]   (``make bench``: N=200, R=4)

Starts a private zfs-fuse in a private mount namespace (as the tests do, see
testing/src/nasd_testing/zfs.py; the kernel's ZFS is used instead when the machine has it), makes a
pool on a sparse file in a temporary folder through a ZPool manifest (not measured), then,
with the real daemon object (``Nasd``) reading a manifest folder:

  (a) the cold converge of N ZDatasets with properties: process spawns split into reads and
      mutating commands, ``zfs create`` and ``zfs set`` counts;
  (b) a no-op pass once converged (after the follow-up pass that fills in status);
  (c) the wall time of (a) against a plain ``sh -c 'for ...; do zfs create -o ...; done'``
      over the same number of datasets with the same ``-o`` options, as a ratio of medians.
      ``--rounds`` (4) rounds alternate the shell loop and a cold converge by a fresh daemon
      object, each starting from the same empty pool (the other's datasets are destroyed in
      between, unmeasured: creates get slower as zfs-fuse holds more mounts);
  (d) ``--cold-runs K``: K more cold converges in a row (a fresh daemon each, the datasets
      destroyed in between), each with a time limit, counting hangs (zfs-fuse hung under a
      four-way shell loop of creates: nasd keeps its changes serial there);
  (e) last, as they may hang zfs-fuse: the same creates from a parallel shell loop
      (``xargs -P 4`` and ``-P 8``), each once, with a time limit; a hang is reported and
      ends the run (the private zfs-fuse is killed).

nasd applies the plans of independent datasets ``applyConcurrency`` at a time (``--concurrency``,
default the daemon's); the ZFS plugin bounds zfs-fuse's changing commands to one at a time.

Prints a table of figures, targets and whether each is met. Timings never make it exit
non-zero; it does so only when the benchmark itself cannot run (no ZFS, not root, a crash).
Everything is cleaned up: the pools are destroyed, the private zfs-fuse stopped, the
temporary folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


from common import BenchError, BenchZfs, converge, manifest_pool, run_on_private_zfs, table, write_docs, yes
from nasd.config import Config
from nasd.daemon import Nasd
from nasd.runner import Spawn

#: the properties every benchmark dataset carries (as a manifest writes them)
PROPERTIES: dict[str, str] = {"compression": "gzip-1", "atime": "off", "quota": "1Gi", "recordsize": "64Ki"}
#: the same, as `zfs create -o` takes them (sizes in bytes, as nasd normalises them)
SHELL_OPTIONS = ["compression=gzip-1", "atime=off", f"quota={1 << 30}", f"recordsize={64 << 10}"]

#: zpool status and zfs get (zfs-fuse: and the listing of file systems it names, as its `zfs get`
#: cannot leave snapshots out)
MAX_COLD_READS = 3
MAX_NOOP_READS = {"zfs-fuse": 3, "openzfs": 2}
#: nasd against the serial shell loop: on zfs-fuse (changes kept serial) no slower than it; on OpenZFS the
#: concurrent apply is to take at most half of it
MAX_RATIO = {"zfs-fuse": 1.1, "openzfs": 0.5}
PARALLEL_WAYS = (4, 8)


class Hang(BenchError):
    pass


def manifest_datasets(pool: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "nasd.io/v1alpha1",
            "kind": "ZDataset",
            "metadata": {"name": f"ds{i}"},
            "spec": {"pool": pool, "path": f"ds{i}", "properties": dict(PROPERTIES)},
        }
        for i in range(n)
    ]


def _short(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."


def split(spawns: list[Spawn]) -> dict[str, Any]:
    def verb(s: Spawn) -> tuple[str, str]:
        program = s.argv[0].rsplit("/", 1)[-1]
        return program, next((a for a in s.argv[1:] if not a.startswith("-")), "")

    return {
        "spawns": len(spawns),
        "reads": sum(1 for s in spawns if not s.mutating),
        "mutating": sum(1 for s in spawns if s.mutating),
        "creates": [s for s in spawns if verb(s) == ("zfs", "create")],
        "sets": sum(1 for s in spawns if verb(s) == ("zfs", "set")),
        "failed": [s for s in spawns if s.returncode != 0],
        "seconds": sum(s.seconds for s in spawns),
        "read_argv": [_short(shlex.join([s.argv[0].rsplit("/", 1)[-1], *s.argv[1:]])) for s in spawns if not s.mutating],
    }


def carries_properties(argv: list[str]) -> bool:
    """A `zfs create` that sets every benchmark property with -o."""
    options = {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv[:-1]) if a == "-o"}
    return set(PROPERTIES) <= options


async def setup_pool(config: Config, manifests: Path, pool: str, vdev: Path) -> Any:
    """The pool, through a ZPool manifest; not measured (it also fills the on-disk dialect cache)."""
    write_docs(manifests / "pool.yaml", [manifest_pool(pool, vdev)])
    async with Nasd(config) as setup:
        await converge(setup, "pool")
        return setup.pm.get_plugin("zfs").dialect


async def bench_nasd(config: Config, pool: str, n: int, *, noop_pass: bool,
                     limit: float | None = None) -> dict[str, Any]:
    """(a) one cold converge of the N datasets of the manifest folder; (b) then, if asked, the no-op pass.
    Raises Hang when the cold converge takes more than ``limit`` seconds."""
    out: dict[str, Any] = {}
    nasd = Nasd(config)
    try:
        await nasd.start()
        out["startup"] = split(nasd.runner.spawns)
        out["bounds"] = {p: b.limit for p, b in nasd.runner.bounds.items() if p in ("zfs", "zpool")}
        mark = len(nasd.runner.spawns)
        t0 = time.monotonic()
        try:
            cold = await asyncio.wait_for(nasd.reconciler.run_pass(), limit)
        except asyncio.TimeoutError:
            raise Hang(f"a cold converge did not end within {limit:.0f} s") from None
        out["cold_seconds"] = time.monotonic() - t0
        out["cold"] = split(nasd.runner.spawns[mark:])
        if not cold.all_ready:
            bad = [f"{o.key[1]}: {o.reason} {o.message}" for o in cold.outcomes if not o.ready]
            raise BenchError("cold converge left datasets not Ready: " + "; ".join(bad[:5]))
        if not noop_pass:
            return out
        # (b): first the follow-up pass(es) that verify and fill in status, then the measured pass
        mark = len(nasd.runner.spawns)
        await converge(nasd, "follow-up")
        out["followup"] = split(nasd.runner.spawns[mark:])
        mark = len(nasd.runner.spawns)
        t0 = time.monotonic()
        noop = await nasd.reconciler.run_pass()
        out["noop_seconds"] = time.monotonic() - t0
        out["noop"] = split(nasd.runner.spawns[mark:])
        out["noop_mutated"] = noop.mutated
        statuses = [nasd.reconciler.current[o.key].status for o in noop.outcomes if o.key[0] == "ZDataset"]
        out["status_filled"] = sum(1 for s in statuses if s.used is not None and s.available is not None)
    finally:
        await nasd.stop()
    return out


def shell_names(pool: str, n: int) -> list[str]:
    return [f"{pool}/shell{i}" for i in range(n)]


def bench_shell(pool: str, n: int, ways: int = 1, limit: float | None = None) -> float:
    """`zfs create` with the same -o options nasd gives, N times from a plain shell loop (``ways`` > 1: that many
    at a time, by ``xargs -P``). Raises Hang when it takes more than ``limit`` seconds."""
    options = " ".join(f"-o {shlex.quote(o)}" for o in ["nasd.io:managed=true", *SHELL_OPTIONS])
    numbers = " ".join(str(i) for i in range(n))
    if ways == 1:
        script = f"for i in {numbers}; do zfs create {options} {shlex.quote(pool)}/shell$i || exit 1; done"
    else:
        script = (f"for i in {numbers}; do echo $i; done | "
                  f"xargs -P {ways} -I@ zfs create {options} {shlex.quote(pool)}/shell@")
    t0 = time.monotonic()
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise Hang(f"the {ways}-way shell loop did not end within {limit:.0f} s") from None
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchError(f"the {ways}-way shell loop failed: {stderr.strip()}")
    return seconds


def destroy_datasets(names: list[str]) -> None:
    """Put the pool back as it was, so that the next round starts from the same state.

    Unmounting them all first avoids zfs-fuse's "dataset is busy" on a destroy right after a create.
    """
    for name in names:
        subprocess.run(["zfs", "umount", name], capture_output=True, timeout=120)
    for name in names:
        for attempt in range(30):
            r = subprocess.run(["zfs", "destroy", name], capture_output=True, text=True, timeout=120)
            if r.returncode == 0:
                break
            time.sleep(0.02 * (attempt + 1))
        else:
            raise BenchError(f"cannot destroy {name}: {r.stderr.strip()}")


def report(n: int, dialect: Any, rounds: list[dict[str, Any]], shell_times: list[float], concurrency: int,
           parallel: dict[int, float | str], stress: dict[str, Any] | None) -> str:
    flavour = dialect.name if dialect is not None and dialect.name in MAX_RATIO else "openzfs"
    max_ratio, max_noop = MAX_RATIO[flavour], MAX_NOOP_READS[flavour]
    last = rounds[-1]
    cold, noop = last["cold"], last["noop"]
    creates = cold["creates"]
    with_props = sum(1 for s in creates if carries_properties(s.argv))
    nasd_times = [r["cold_seconds"] for r in rounds]
    nasd_s, shell_s = statistics.median(nasd_times), statistics.median(shell_times)
    ratio = nasd_s / shell_s if shell_s else float("inf")
    same = all((r["cold"]["spawns"], r["cold"]["reads"], r["cold"]["sets"]) ==
               (cold["spawns"], cold["reads"], cold["sets"]) for r in rounds)
    rows = [
        ("(a) cold converge: spawns", str(cold["spawns"]), f"{n} + reads", yes(cold["spawns"] <= n + MAX_COLD_READS)),
        ("(a)   zfs create, all props via -o", f"{len(creates)} ({with_props} with -o)", str(n),
         yes(len(creates) == n and with_props == n)),
        ("(a)   mutating", str(cold["mutating"]), str(n), yes(cold["mutating"] == n)),
        ("(a)   zfs set", str(cold["sets"]), "0", yes(cold["sets"] == 0)),
        ("(a)   reads", str(cold["reads"]), f"<= {MAX_COLD_READS}", yes(cold["reads"] <= MAX_COLD_READS)),
        ("(a)   failed commands", str(len(cold["failed"])), "0", yes(not cold["failed"])),
        ("(b) no-op pass: spawns", str(noop["spawns"]), f"<= {max_noop}", yes(noop["spawns"] <= max_noop)),
        ("(b)   mutating", str(noop["mutating"]), "0", yes(noop["mutating"] == 0 and not last["noop_mutated"])),
        ("(b)   reads", str(noop["reads"]), f"<= {max_noop}", yes(noop["reads"] <= max_noop)),
        ("(c) nasd cold converge, median (s)", f"{nasd_s:.2f}", "", ""),
        ("(c) serial shell loop, median (s)", f"{shell_s:.2f}", "", ""),
        ("(c) ratio nasd/serial shell", f"{ratio:.3f}", f"<= {max_ratio}", yes(ratio <= max_ratio)),
    ]
    for ways, got in parallel.items():
        if isinstance(got, str):
            rows.append((f"(e) {ways}-way shell loop", got, "", ""))
        else:
            rows.append((f"(e) {ways}-way shell loop (s); /serial", f"{got:.2f}; {got / shell_s:.3f}", "", ""))
            rows.append((f"(e)   ratio nasd/{ways}-way shell", f"{nasd_s / got:.3f}", "", ""))
    if stress is not None:
        times = stress["times"]
        rows.append(("(d) cold converges in a row", f"{len(times)} of {stress['runs']}", str(stress["runs"]),
                     yes(len(times) == stress["runs"])))
        rows.append(("(d)   hangs", str(stress["hangs"]), "0", yes(stress["hangs"] == 0)))
        if times:
            rows.append(("(d)   seconds: median, max", f"{statistics.median(times):.2f}, {max(times):.2f}", "", ""))
    d = dialect
    lines = [
        f"nasd ZFS converge benchmark: {n} datasets, properties "
        + ", ".join(f"{k}={v}" for k, v in PROPERTIES.items()) + f"; {len(rounds)} rounds",
        f"ZFS dialect detected: {d.name if d else '(none)'}"
        + (f" (multi_set={d.multi_set}, get_types={d.get_types}, list_parsable={d.list_parsable}, "
           f"status_full_paths={d.status_full_paths}, {len(d.properties)} properties)" if d else ""),
        f"nasd applyConcurrency={concurrency}; bound on changing zfs/zpool commands: "
        + (f"{last['bounds'].get('zfs')} at a time (the ZFS plugin, for {d.name})" if last["bounds"].get("zfs")
           else "none (applyConcurrency rules)"),
        "",
        table(rows),
        "",
        "(a) and (b) are the last round's counts"
        + ("; every round counted the same" if same else "; ROUNDS DIFFERED: " + ", ".join(
            f"{r['cold']['spawns']} spawns/{r['cold']['reads']} reads" for r in rounds)),
        f"reads in the cold pass:  {'; '.join(cold['read_argv']) or '-'}",
        f"reads in the no-op pass: {'; '.join(noop['read_argv']) or '-'}",
        f"startup (dialect detection, cached on disk by the unmeasured pool run): {last['startup']['spawns']} spawns",
        f"follow-up pass after the cold converge: {last['followup']['spawns']} spawns "
        f"({last['followup']['mutating']} mutating); datasets with used/available in status: "
        f"{last['status_filled']}/{n}",
        f"no-op pass wall time: {last['noop_seconds']:.3f} s",
        f"nasd cold converge, last round: {last['cold_seconds']:.2f} s, of which {cold['seconds']:.2f} s waiting "
        f"for commands and {last['cold_seconds'] - cold['seconds']:.2f} s in nasd itself (planning, state files)",
        "cold converge per round (s): nasd " + " ".join(f"{t:.2f}" for t in nasd_times)
        + "; shell " + " ".join(f"{t:.2f}" for t in shell_times)
        + f"; per dataset (median): nasd {1000 * nasd_s / n:.1f} ms, shell {1000 * shell_s / n:.1f} ms"
        + f"; best-of ratio {min(nasd_times) / min(shell_times):.3f}",
    ]
    misses = [r[0].strip() for r in rows if r[3] == "NO"]
    lines.append("targets not met: " + (", ".join(misses) if misses else "none"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", "-n", type=int, default=200, help="number of datasets [200]")
    parser.add_argument("--rounds", "-r", type=int, default=4,
                        help="timing rounds, shell loop and nasd alternating; the medians are compared [4]")
    parser.add_argument("--cold-runs", type=int, default=0,
                        help="then this many cold converges in a row, counting hangs (e.g. 50) [0]")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="nasd's applyConcurrency [the daemon's default]")
    parser.add_argument("--no-parallel-shell", action="store_true",
                        help="leave out the parallel shell loops (they may hang zfs-fuse)")
    args = parser.parse_args()
    n, rounds = args.datasets, args.rounds
    if n < 1 or n > 900:
        parser.error("--datasets must be from 1 to 900 (zfs-fuse mounts at most 1000 file systems)")
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def body(env: BenchZfs) -> int:
        root, pool, manifests = env.root, env.pool, env.manifests
        config = env.config("state-setup")
        if args.concurrency is not None:
            config = config.model_copy(update={"applyConcurrency": args.concurrency})
        dialect = asyncio.run(setup_pool(config, manifests, pool, env.vdev))
        write_docs(manifests / "datasets.yaml", manifest_datasets(pool, n))
        # Rounds alternate the shell loop and nasd, each starting from the same pool (the other's
        # datasets destroyed, each nasd round on a fresh copy of the state after the pool was made),
        # and the medians are compared: one run of each is too noisy on a small machine.
        results: list[dict[str, Any]] = []
        shell_times: list[float] = []
        for r in range(rounds):
            # which side goes first alternates: the first one after a round of destroys pays for
            # zfs-fuse's background freeing
            last = r == rounds - 1
            state = root / f"state-{r}"
            shutil.copytree(config.stateDir, state)
            order = ("shell", "nasd") if r % 2 == 0 else ("nasd", "shell")
            for side in order:
                if side == "shell":
                    shell_times.append(bench_shell(pool, n))
                    destroy_datasets(shell_names(pool, n))
                else:
                    results.append(asyncio.run(
                        bench_nasd(config.model_copy(update={"stateDir": state}), pool, n, noop_pass=last)))
                    destroy_datasets([f"{pool}/ds{i}" for i in range(n)])
            print(f"round {r + 1}/{rounds} ({order[0]} first): shell {shell_times[-1]:.2f} s, "
                  f"nasd {results[-1]['cold_seconds']:.2f} s", flush=True)
        # a run that takes 10 times the slowest so far (and a minute at least) is taken as hung
        limit = max(60.0, 10 * max(shell_times + [r["cold_seconds"] for r in results]))
        stress: dict[str, Any] | None = None
        hung = ""
        if args.cold_runs:
            stress = {"runs": args.cold_runs, "times": [], "hangs": 0}
            for k in range(args.cold_runs):
                state = root / f"state-cold-{k}"
                shutil.copytree(config.stateDir, state)
                try:
                    got = asyncio.run(bench_nasd(config.model_copy(update={"stateDir": state}), pool, n,
                                                 noop_pass=False, limit=limit))
                except Hang as e:
                    stress["hangs"] += 1
                    hung = f"cold converge {k + 1}: {e}"
                    break
                stress["times"].append(got["cold_seconds"])
                destroy_datasets([f"{pool}/ds{i}" for i in range(n)])
                shutil.rmtree(state, ignore_errors=True)
                if (k + 1) % 10 == 0:
                    print(f"cold converges in a row: {k + 1}/{args.cold_runs}, last {got['cold_seconds']:.2f} s",
                          flush=True)
        parallel: dict[int, float | str] = {}
        for ways in () if args.no_parallel_shell or hung else PARALLEL_WAYS:
            try:
                parallel[ways] = bench_shell(pool, n, ways, limit)
            except Hang as e:
                parallel[ways] = f"HUNG after {limit:.0f} s"
                hung = str(e)
                break
            destroy_datasets(shell_names(pool, n))
            print(f"{ways}-way shell loop: {parallel[ways]:.2f} s", flush=True)
        print()
        print(report(n, dialect, results, shell_times, config.applyConcurrency, parallel, stress))
        if hung:
            print(f"hang: {hung}; killing the private zfs-fuse", flush=True)
            if env.zfs.pid:
                os.kill(env.zfs.pid, signal.SIGKILL)
        return 0

    return run_on_private_zfs(body)


if __name__ == "__main__":
    sys.exit(main())
