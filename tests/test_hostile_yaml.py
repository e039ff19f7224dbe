"""Hostile manifest files (issue 14): an alias bomb, a document nested 1000 deep, a file larger
than the limit. The real ``nasd`` refuses each at once with exit 2, a short message naming the
file and the limit, never a traceback; ``nasd serve`` starts beside them and serves the good files."""

from __future__ import annotations

import http.client
import socket as socketlib
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from nasd.limits import MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH
from nasd_testing.hostile import alias_bomb, dataset, nested
from nasd_testing.serve import NASD, Server, clean_env, nasd, poll


def refused(result: subprocess.CompletedProcess, path: Path, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr[:2000]
    assert len(result.stderr) < 1000, f"{len(result.stderr)} characters of error:\n{result.stderr[:2000]}"
    assert f"{path}: " in result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["reconcile", "plan", "apply"])
def test_an_alias_bomb_in_a_manifest_file_exits_2_at_once_naming_the_file_and_the_alias_limit(tmp_path, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 600
    where = ["--socket", tmp_path / "none.sock"] if command == "apply" else ["--state-dir", tmp_path / "state"]

    started = time.monotonic()
    result = nasd(command, "-f", bomb, *where)

    refused(result, bomb, "aliases", f"{MAX_ALIAS_NODES} nodes")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "state").exists()


def test_a_manifest_with_more_aliases_than_the_limit_is_refused_naming_it(tmp_path):
    many = tmp_path / "many.yaml"
    labels = ", ".join(f"l{i}: *v" for i in range(MAX_ALIASES + 1))
    many.write_text(f"apiVersion: nasd.io/v1alpha1\nkind: ZDataset\nmetadata:\n  name: d\n  labels: {{v: &v x, {labels}}}\n"
                    "spec: {pool: tank, path: d}\n")

    refused(nasd("plan", "-f", many, "--state-dir", tmp_path / "state"), many, f"more than {MAX_ALIASES} YAML aliases")


def test_a_manifest_nested_1000_deep_exits_2_naming_the_depth_limit(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text(nested(1000))

    refused(nasd("plan", "-f", deep, "--state-dir", tmp_path / "state"), deep, f"more than {MAX_DEPTH} levels deep",
            "line 4")


def test_a_manifest_file_larger_than_1_mib_is_refused_naming_the_limit(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(dataset("big")) + ("# padding\n" * 110_000))
    assert big.stat().st_size > 1024 * 1024

    refused(nasd("plan", "-f", big, "--state-dir", tmp_path / "state"), big, "larger than the limit of 1 MiB")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_named_as_a_manifest_is_refused_at_once_never_waited_on(tmp_path, kind):
    path = tmp_path / "m.yaml"
    if kind == "fifo":
        import os
        os.mkfifo(path)  # an open without O_NONBLOCK would wait for a writer forever
    else:
        path.symlink_to("/dev/zero")  # never ends
    started = time.monotonic()
    result = nasd("plan", "-f", path, "--state-dir", tmp_path / "state", timeout=20)
    refused(result, path, "not a regular file")
    assert time.monotonic() - started < 10


def test_anchors_merge_keys_and_a_few_aliases_still_load(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("""\
kind: List
items:
- apiVersion: &v nasd.io/v1alpha1
  kind: &k ZDataset
  metadata: {name: a, labels: &l {team: media}}
  spec: {pool: nopool, path: a, properties: &p {atime: "off", compression: gzip-1}}
- {apiVersion: *v, kind: *k, metadata: {name: b, labels: *l}, spec: {pool: nopool, path: b, properties: *p}}
- apiVersion: *v
  kind: *k
  metadata: {name: c, labels: *l}
  spec: {pool: nopool, path: c, properties: {<<: *p, quota: 1Gi}}
""")

    result = nasd("plan", "-f", ok, "--state-dir", tmp_path / "state")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ZDataset/c" in result.stdout


def _healthz(sock: Path) -> int:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socketlib.socket(socketlib.AF_UNIX)
            self.sock.settimeout(5)
            self.sock.connect(str(sock))

    connection = UnixConnection("nasd", timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def test_serve_starts_beside_hostile_manifests_logs_why_and_serves_the_good_files(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(alias_bomb())
    (folder / "deep.yaml").write_text(nested(1000))
    (folder / "good.yaml").write_text(yaml.safe_dump(dataset("good")))
    sock, log = tmp_path / "nasd.sock", tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([NASD, "serve", "--manifests", str(folder), "--state-dir", str(tmp_path / "state"),
                                 "--socket", str(sock)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env())
    server = Server(proc, sock, log)
    try:
        poll(lambda: sock.exists() or proc.poll() is not None, timeout=20, what="the API socket")
        assert proc.poll() is None, f"nasd serve exited with {proc.returncode}:\n{server.output()[-3000:]}"

        assert _healthz(sock) == 200
        got = server.cli("get", "zdataset", "good", "-o", "yaml")
        assert got.returncode == 0, got.stdout + got.stderr
        assert server.cli("get", "zdataset", "deep").returncode == 1
        output = server.output()
        assert f"{folder / 'deep.yaml'}: nests mappings and lists more than {MAX_DEPTH} levels deep" in output
        assert f"{folder / 'bomb.yaml'}: its YAML aliases expand to more than {MAX_ALIAS_NODES} nodes" in output
        assert len(output) < 20_000
    finally:
        assert server.stop() == 0, server.output()[-3000:]
    assert "Traceback" not in server.output()
