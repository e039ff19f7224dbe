"""How fast the ``nasd`` command line starts and answers, next to ``kubectl`` when it is installed.

    .venv/bin/python bench/cli_start.py [--runs N] [--objects K] [--nasd PATH]   (defaults: 20, 20, the installed
                                                                                 console script)

In a temporary folder it starts the real ``nasd serve`` (the installed console script, its own state folder
and API socket, an empty manifests folder, every plugin that drives a program disabled with
``NASD_DISABLED_PLUGINS``: only the API and the stores run, nothing on this machine is touched) and applies
K ZDatasets to it. It then runs each client command N times, as a user does (a new process each time, over
the unix socket; Python's bytecode cached as in an installed nasd, after one run not counted), and prints per
command the median wall time and the median peak RSS of the process (``wait4``'s ``ru_maxrss``; each command
is forked from a small timing process, whose memory would otherwise count):

  ``nasd --help`` (start only), ``nasd get zdataset`` (the table of K), ``nasd get zdataset NAME -o yaml``,
  ``nasd describe zdataset NAME``, ``nasd apply -f ONE`` (unchanged re-apply), ``nasd delete zdataset NAME``
  (of an object applied just before, not timed).

It also counts the modules ``nasd get`` imports (``PYTHONPROFILEIMPORTTIME``) and names the heavy ones it
should not need (asyncio, aiohttp, pydantic, yaml, pluggy, the Kubernetes client).

When ``kubectl`` is on PATH, it runs the test Kubernetes API of nasd-testing (``FakeKubeAPI``: HTTPS with a
bearer token, nasd's CRDs installed by kubectl, the same K ZDatasets applied by kubectl) and times
``kubectl version --client`` (start only), ``kubectl get zdatasets``, ``kubectl get zdataset NAME -o yaml`` and
``kubectl describe zdataset NAME`` the same way (discovery cached in a private ``--cache-dir``), with the
ratio nasd / kubectl per command. Without kubectl it says so and prints nasd's figures alone.

The target (issue 18): ``nasd get`` median wall <= 0.15 s. Timings never make it exit non-zero; it does so
only when the benchmark cannot run (nasd serve does not start, a command fails). Everything is stopped
and the folder removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from common import BenchError, table, yes
from nasd_testing.serve import NASD, clean_env, poll

TARGET_GET = 0.15
HEAVY = ("asyncio", "aiohttp", "pydantic", "pydantic_core", "yaml", "pluggy", "kubernetes_asyncio")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sample:
    wall: float  # seconds, median
    rss: float  # MiB, median of the peak RSS


#: forks and times each command: a process forked from this small one starts with its small memory, where a
#: child of the benchmark (vfork or fork) would count the benchmark's own RSS in its ``ru_maxrss``
_TIMER = """
import json, os, sys, time
for line in sys.stdin:
    argv, env, out = json.loads(line)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(null, 0); os.dup2(fd, 1); os.dup2(fd, 2)
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(fd); os.close(null)
    print(json.dumps([wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]), flush=True)
"""


class Timer:
    """A small process that runs commands for us: (wall seconds, peak RSS KiB, exit status) of each."""

    def __enter__(self) -> "Timer":
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _TIMER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)

    def run(self, argv: list[str], env: dict[str, str], out: Path) -> tuple[float, int, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([argv, env, str(out)]) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise BenchError("the timing process ended")
        wall, kib, rc = json.loads(answer)
        return wall, kib, rc



def measure(timer: Timer, argv: list[str], env: dict[str, str], runs: int, scratch: Path,
            before: Callable[[], object] | None = None) -> Sample:
    walls, rss = [], []
    for i in range(runs + 1):  # the first one, not counted, warms the caches (the bytecode of what it imports)
        if before is not None:
            before()
        wall, kib, rc = timer.run(argv, env, scratch)
        if rc != 0:
            raise BenchError(f"{' '.join(argv)} exited {rc}: {scratch.read_text(errors='replace')[-500:]}")
        if i:
            walls.append(wall)
            rss.append(kib / 1024)
    return Sample(statistics.median(walls), statistics.median(rss))


def check(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result.stdout


def imported_modules(argv: list[str], env: dict[str, str]) -> list[str]:
    result = subprocess.run(argv, capture_output=True, text=True, env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
                            timeout=60, stdin=subprocess.DEVNULL)
    return [line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line and not line.rstrip().endswith("package")]


def datasets(count: int) -> list[dict[str, Any]]:
    return [{"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": f"bench{i}"},
             "spec": {"pool": "benchabsent", "path": f"bench{i}"}} for i in range(count)]


def api_only_env(nasd: str, root: Path) -> dict[str, str]:
    """nasd's environment with every plugin that is not built in disabled (only the API and stores run), and
    Python's bytecode cached (in a private folder): as in an installed nasd, where pip wrote it."""
    listing = json.loads(check([nasd, "plugins", "-o", "json"], clean_env()))
    disabled = ",".join(p["name"] for p in listing if "built-in" not in p["distribution"])
    env = clean_env(NASD_DISABLED_PLUGINS=disabled, HOME=str(root), PYTHONPYCACHEPREFIX=str(root / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Serving:
    """``nasd serve`` in ``root``, API-only; stopped with SIGTERM on leaving."""

    def __init__(self, nasd: str, root: Path, env: dict[str, str]):
        self.nasd, self.root, self.env = nasd, root, env
        self.socket = root / "nasd.sock"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Serving":
        (self.root / "manifests").mkdir()
        log = open(self.root / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [self.nasd, "serve", "--manifests", str(self.root / "manifests"), "--state-dir",
             str(self.root / "state"), "--socket", str(self.socket)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        try:
            poll(lambda: self.socket.exists() or self.proc.poll() is not None, timeout=30, what="the API socket")
        except AssertionError as e:
            raise BenchError(str(e)) from None
        if self.proc.poll() is not None:
            raise BenchError(f"nasd serve exited {self.proc.returncode}: {(self.root / 'serve.log').read_text()}")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class KubeAPI:
    """nasd-testing's Kubernetes API on its own event loop in a thread, with a kubeconfig."""

    def __init__(self, root: Path):
        from nasd_testing.kubeapi import FakeKubeAPI

        self.api = FakeKubeAPI(token="nasd-bench-token")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kubeapi", daemon=True)
        self.kubeconfig = root / "kubeconfig"
        self.cache = root / "kube-cache"

    def __enter__(self) -> "KubeAPI":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(30)
        self.api.write_kubeconfig(self.kubeconfig)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def kubectl(self, *args: str) -> list[str]:
        return ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache), *args]


def mib(value: float) -> str:
    return f"{value:.1f} MiB"


def secs(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def bench_nasd(timer: Timer, nasd: str, root: Path, runs: int, objects: int) -> tuple[dict[str, Sample], list[str]]:
    env = api_only_env(nasd, root)
    manifests = root / "datasets.yaml"
    manifests.write_text(yaml.safe_dump_all(datasets(objects), sort_keys=False))
    one = root / "one.yaml"
    one.write_text(yaml.safe_dump(datasets(1)[0], sort_keys=False))
    scratch = root / "out"
    throwaway = root / "throwaway.yaml"
    throwaway.write_text(yaml.safe_dump({**datasets(1)[0], "metadata": {"name": "throwaway"}}, sort_keys=False))
    with Serving(nasd, root, env) as server:
        sock = ["--socket", str(server.socket)]
        check([nasd, "apply", "-f", str(manifests), *sock], env)

        def timed(*args: str, before: Callable[[], object] | None = None) -> Sample:
            return measure(timer, [nasd, *args, *(sock if args[0] != "--help" else [])], env, runs, scratch, before)

        results = {
            "--help": timed("--help"),
            "get (table)": timed("get", "zdataset"),
            "get NAME -o yaml": timed("get", "zdataset", "bench0", "-o", "yaml"),
            "describe": timed("describe", "zdataset", "bench0"),
            "apply -f (1)": timed("apply", "-f", str(one)),
            "delete": timed("delete", "zdataset", "throwaway",
                            before=lambda: check([nasd, "apply", "-f", str(throwaway), *sock], env)),
        }
        modules = imported_modules([nasd, "get", "zdataset", *sock], env)
    return results, modules


def bench_kubectl(timer: Timer, root: Path, runs: int, objects: int) -> dict[str, Sample]:
    env = {**os.environ, "HOME": str(root)}
    scratch = root / "kout"
    manifests = root / "datasets.yaml"
    with KubeAPI(root) as kube:
        check(kube.kubectl("apply", "-f", str(ROOT / "crds")), env)
        check(kube.kubectl("apply", "-f", str(manifests)), env)
        check(kube.kubectl("get", "zdatasets"), env)  # fills the discovery cache

        def timed(*args: str) -> Sample:
            return measure(timer, kube.kubectl(*args), env, runs, scratch)

        return {
            "--help": measure(timer, ["kubectl", "version", "--client"], env, runs, scratch),
            "get (table)": timed("get", "zdatasets"),
            "get NAME -o yaml": timed("get", "zdataset", "bench0", "-o", "yaml"),
            "describe": timed("describe", "zdataset", "bench0"),
        }


def report(ours: dict[str, Sample], theirs: dict[str, Sample] | None, modules: list[str]) -> None:
    head = ("command", "nasd wall", "nasd RSS") + (("kubectl wall", "kubectl RSS", "ratio") if theirs else ())
    rows = [head]
    for what, s in ours.items():
        row: tuple[str, ...] = (what, secs(s.wall), mib(s.rss))
        if theirs:
            k = theirs.get(what)
            row += (secs(k.wall), mib(k.rss), f"{s.wall / k.wall:.2f}") if k else ("-", "-", "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if theirs:
        print("(kubectl's --help row is `kubectl version --client`; kubectl talks HTTPS with a token to the "
              "test API, nasd its unix socket)")
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    print(f"\n`nasd get` imports {len(modules)} modules; heavy ones: {', '.join(heavy) or 'none'}\n")
    get = ours["get (table)"]
    rows4 = [("nasd get: median wall", secs(get.wall), f"<= {secs(TARGET_GET)}", yes(get.wall <= TARGET_GET)),
             ("nasd get: median peak RSS", mib(get.rss), "-", "-"),
             ("nasd get: heavy modules imported", str(len(heavy)), "0", yes(not heavy))]
    if theirs:
        rows4.append(("nasd get / kubectl get (wall)", f"{get.wall / theirs['get (table)'].wall:.2f}", "-", "-"))
    print(table(rows4))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--nasd", default=NASD, help="the nasd console script to measure (another build's, say)")
    args = parser.parse_args()
    if not args.nasd:
        print("error: the nasd console script is not installed (make venv)", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="nasd-bench-cli-"))
    try:
        print(f"{args.runs} runs per command, {args.objects} ZDatasets, in {root}", flush=True)
        with Timer() as timer:
            ours, modules = bench_nasd(timer, args.nasd, root, args.runs, args.objects)
            theirs = None
            if shutil.which("kubectl"):
                theirs = bench_kubectl(timer, root, args.runs, args.objects)
            else:
                print("kubectl is not installed here: nasd's figures alone")
        report(ours, theirs, modules)
        return 0
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
