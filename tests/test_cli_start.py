"""The client commands start fast (issue 18): ``get``, ``describe``, ``delete`` (and ``--help``) import nothing of
the daemon, neither asyncio, aiohttp, pydantic, pluggy nor (but for YAML output) yaml; ``apply`` imports the
models to validate every file first, and still nothing of the daemon. Each command runs for real against a real
``nasd serve`` (API only: the plugins that drive programs are disabled) and reports what it imported.

The client speaks HTTP/1.1 itself over the socket (``nasd.client``), so its behaviour is proved here too: the
outputs, the token over TCP, and a clear error (exit 1, no traceback) when what answers is not the nasd API.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from nasd_testing.serve import NASD, clean_env, nasd, poll

#: never imported by a client command
HEAVY = ("asyncio", "aiohttp", "pydantic", "pydantic_core", "pluggy", "kubernetes_asyncio", "ssl", "http.client")
DAEMON = ("nasd.models", "nasd.config", "nasd.manifests", "nasd.daemon", "nasd.plugins", "nasd.reconciler",
          "nasd.web.app")
TOKEN = "cli-start-token-" + "x" * 16

#: runs ``nasd ARGS...`` in this process (as the console script does) and writes its exit status and
#: every module it imported to OUT
PROBE = """
import json, sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["nasd", *args]
from nasd.cli import main
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


class Daemon:
    def __init__(self, root: Path, proc: subprocess.Popen, port: int):
        self.root, self.proc, self.port = root, proc, port
        self.socket = root / "nasd.sock"
        self.url = f"http://127.0.0.1:{port}"

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess:
        return nasd(*args, "--socket", self.socket, timeout=30)

    def probe(self, *args: str | Path, socket: bool = True) -> tuple[int, set[str]]:
        """(exit status, modules imported) of ``nasd ARGS`` (``--socket`` added unless ``socket`` is False)."""
        out = self.root / "probe.json"
        argv = [*map(str, args), *(["--socket", str(self.socket)] if socket else [])]
        result = subprocess.run([sys.executable, "-c", PROBE, str(out), *argv], capture_output=True, text=True,
                                timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
        assert "Traceback" not in result.stderr, result.stderr
        report = json.loads(out.read_text())
        return report["code"], set(report["modules"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A real ``nasd serve`` with only its built-in plugins (the API and its stores: nothing is touched), on a unix
    socket and on TCP with a bearer token, holding two ZDatasets."""
    root = tmp_path_factory.mktemp("cli-start")
    plugins = json.loads(nasd("plugins", "-o", "json").stdout)
    disabled = ",".join(p["name"] for p in plugins if "built-in" not in p["distribution"])
    (root / "manifests").mkdir()
    token = root / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    port = free_port()
    log = open(root / "serve.log", "wb")
    proc = subprocess.Popen([NASD, "serve", "--manifests", str(root / "manifests"), "--state-dir", str(root / "state"),
                             "--socket", str(root / "nasd.sock"), "--listen", f"127.0.0.1:{port}", "--token-file",
                             str(token)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=clean_env(NASD_DISABLED_PLUGINS=disabled))
    log.close()
    server = Daemon(root, proc, port)
    try:
        poll(lambda: server.socket.exists() or proc.poll() is not None, timeout=30, what="the API socket")
        assert proc.poll() is None, (root / "serve.log").read_text()
        docs = [{"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": name},
                 "spec": {"pool": "absent", "path": name}} for name in ("media", "docs")]
        (root / "datasets.yaml").write_text(yaml.safe_dump_all(docs))
        applied = server.cli("apply", "-f", root / "datasets.yaml")
        assert applied.returncode == 0, applied.stderr
        yield server
    finally:
        proc.terminate()
        proc.wait(20)


def heavy_in(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """The heavy or daemon modules (or packages) among ``modules`` that are not ``allowed``."""
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in (*HEAVY, *DAEMON, "yaml"))
                  and not any(m == a or m.startswith(a + ".") for a in allowed))


# -- what each command imports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, code", [
    (("get", "zdataset"), 0),
    (("get", "zds", "-o", "wide"), 0),
    (("get", "zdataset", "media", "-o", "json"), 0),
    (("get", "zdataset", "nosuch"), 1),
    (("get", "nosuchkind"), 2),
], ids=["table", "wide", "json", "not-found", "unknown-kind"])
def test_get_imports_nothing_of_the_daemon_nor_asyncio_aiohttp_pydantic_or_yaml(daemon, args, code):
    status, modules = daemon.probe(*args)

    assert status == code
    assert heavy_in(modules) == []
    assert "nasd.client" in modules  # (the probe ran the command)


def test_get_without_a_daemon_and_help_import_nothing_heavy_either(daemon, tmp_path):
    status, modules = daemon.probe("get", "zpool", "--socket", tmp_path / "absent.sock", socket=False)
    assert status == 1
    assert heavy_in(modules) == []

    status, modules = daemon.probe("--help", socket=False)
    assert status == 0
    assert heavy_in(modules) == []


def test_describe_and_yaml_output_import_yaml_and_nothing_of_the_daemon(daemon):
    for args in (("describe", "zdataset", "media"), ("get", "zdataset", "media", "-o", "yaml")):
        status, modules = daemon.probe(*args)

        assert status == 0
        assert "yaml" in modules
        assert heavy_in(modules, allowed=("yaml",)) == []


def test_delete_imports_nothing_of_the_daemon_nor_yaml(daemon, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset",
                                     "metadata": {"name": "extra"}, "spec": {"pool": "absent", "path": "extra"}}))
    assert daemon.cli("apply", "-f", extra).returncode == 0

    status, modules = daemon.probe("delete", "zdataset", "extra")

    assert status == 0
    assert heavy_in(modules) == []
    assert daemon.cli("get", "zdataset", "extra").returncode == 1


def test_apply_validates_with_the_models_but_imports_nothing_of_the_daemon_asyncio_or_aiohttp(daemon):
    status, modules = daemon.probe("apply", "-f", daemon.root / "datasets.yaml")

    assert status == 0
    assert "nasd.models" in modules  # every file is validated before anything is sent
    assert heavy_in(modules, allowed=("pydantic", "pydantic_core", "yaml", "nasd.models", "nasd.manifests")) == []


# -- the names the client knows without the models --------------------------------------------------------------


def test_the_clients_kind_table_names_every_kind_as_the_models_do():
    from nasd.kind_names import KIND_NAMES, kind_names
    from nasd.models import KINDS, kind_for

    assert [(k.kind, k.plural, k.short_names, k.key_column) for k in KIND_NAMES] == \
        [(c.__name__, c.plural, c.short_names, c.key_column) for c in KINDS.values()]
    for cls in KINDS.values():
        for name in (cls.__name__, cls.__name__.upper(), cls.plural, cls.plural.rstrip("s"), *cls.short_names,
                     cls.plural[:-3] + "y"):
            try:
                expected = kind_for(name).__name__
            except KeyError as e:
                with pytest.raises(KeyError) as raised:
                    kind_names(name)
                assert raised.value.args == e.args
            else:
                assert kind_names(name).kind == expected
    with pytest.raises(KeyError) as ours:
        kind_names("datasets")
    with pytest.raises(KeyError) as theirs:
        kind_for("datasets")
    assert ours.value.args == theirs.value.args


def test_the_clients_default_socket_and_api_version_are_the_daemons():
    from nasd.client import DEFAULT_SOCKET
    from nasd.config import DEFAULT_SOCKET as CONFIG_SOCKET
    from nasd.kind_names import GROUP_VERSION
    from nasd.models import GROUP_VERSION as MODELS_GROUP_VERSION

    assert Path(DEFAULT_SOCKET) == CONFIG_SOCKET
    assert GROUP_VERSION == MODELS_GROUP_VERSION


# -- the client's behaviour ---------------------------------------------------------------------------------------


def test_client_commands_over_the_socket_print_tables_yaml_json_and_descriptions(daemon):
    table = daemon.cli("get", "zdataset")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "REASON", "MOUNTPOINT"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["docs", "media"]

    wide = daemon.cli("get", "zds", "-o", "wide").stdout
    assert "MESSAGE" in wide.splitlines()[0] and "ZPool absent is not declared" in wide

    one = yaml.safe_load(daemon.cli("get", "zdataset", "media", "-o", "yaml").stdout)
    assert (one["kind"], one["metadata"]["name"], one["spec"]["pool"]) == ("ZDataset", "media", "absent")
    listed = json.loads(daemon.cli("get", "zdatasets", "-o", "json").stdout)
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["docs", "media"]

    described = daemon.cli("describe", "zds", "media").stdout
    assert "Name:        media\nKind:        ZDataset\nGeneration:  1\nSpec:\n  pool: absent\n" in described
    assert "Conditions:\n  Ready=False  PoolNotReady  (generation 1," in described

    missing = daemon.cli("get", "zdataset", "nosuch")
    assert (missing.returncode, missing.stderr.strip()) == (1, 'error: zdatasets "nosuch" not found')
    unknown = daemon.cli("describe", "nosuchkind", "x")
    assert unknown.returncode == 2 and "unknown kind 'nosuchkind'; known kinds: ZPool, ZDataset" in unknown.stderr


def test_over_tcp_the_bearer_token_is_sent_and_a_wrong_one_exits_1_saying_so(daemon):
    ok = nasd("get", "zdataset", "media", "-o", "json", "--server", daemon.url, "--token", TOKEN)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["metadata"]["name"] == "media"
    by_env = nasd("get", "zdataset", NASD_SERVER=daemon.url + "/", NASD_TOKEN=TOKEN)
    assert by_env.returncode == 0, by_env.stderr

    refused = nasd("get", "zdataset", "--server", daemon.url, "--token", "wrong")

    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: a valid bearer token is required"


@contextlib.contextmanager
def answering(answer: bytes) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads each request's head and answers ``answer`` (then closes): what
    ``--server`` finds when it names something that is not the nasd API."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def http_answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("answer, says", [
    (http_answer("404 Not Found", b"<html>nope</html>", "Content-Type: text/html", "Content-Length: 17"),
     "HTTP 404 without a JSON body from http://127.0.0.1:{port}/apis/nasd.io/v1alpha1/zdatasets: <html>nope</html>"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "is not HTTP: 'SSH-2.0-OpenSSH_9.2'"),
    (b"", "closed the connection before a complete HTTP answer"),
    (http_answer("200 OK", b'{"items": [', "Content-Length: 100"), "closed the connection 89 bytes before the end"),
    (http_answer("200 OK", b"zz\r\n", "Transfer-Encoding: chunked"), "the chunked answer from"),
], ids=["html-404", "not-http", "closed", "cut-short", "bad-chunks"])
def test_a_server_that_is_not_the_nasd_api_exits_1_saying_what_it_answered(answer, says):
    with answering(answer) as url:
        result = nasd("get", "zdataset", "--server", url)

    assert result.returncode == 1, result.stdout
    assert says.format(port=url.rsplit(":", 1)[1]) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_chunked_answer_from_a_proxy_is_read_whole():
    items = {"items": [{"metadata": {"name": f"d{i}"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready"}]}} for i in range(3)]}
    body = json.dumps(items).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    answer = http_answer("200 OK", chunks + b"0\r\n\r\n", "Content-Type: application/json; charset=utf-8",
                         "Transfer-Encoding: chunked")
    with answering(answer) as url:
        result = nasd("get", "zdataset", "--server", url)

    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()[1:]] == [[f"d{i}", "True", "Ready"] for i in range(3)]


@pytest.mark.parametrize("server", ["localhost:8740", "ftp://127.0.0.1:21", "http://127.0.0.1:99999", "http://"])
def test_a_server_that_is_not_an_http_url_exits_2_naming_it(server):
    result = nasd("get", "zdataset", "--server", server)

    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --server: {server!r} is not a URL like http://HOST:PORT"


def test_a_token_of_more_than_one_line_exits_2_naming_the_option(daemon):
    result = nasd("get", "zdataset", "--server", daemon.url, "--token", TOKEN + "\nX-Other: 1")

    assert result.returncode == 2
    assert result.stderr.strip() == "error: --token: a token is one line of printable characters (is it the whole " \
        "file?)"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to run as another user")
def test_a_user_who_is_not_root_is_told_to_run_the_command_as_root(daemon):
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", NASD, "get", "zdataset",
                             "--socket", str(daemon.socket)], capture_output=True, text=True, timeout=30,
                            env=clean_env(), stdin=subprocess.DEVNULL)

    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == (f"error: cannot reach nasd at {daemon.socket}: Permission denied (the API socket "
                                     "is root's only: run the command as root)")


def test_a_refused_connection_exits_1_naming_the_server():
    url = f"http://127.0.0.1:{free_port()}"

    result = nasd("get", "zdataset", "--server", url)

    assert result.returncode == 1
    assert f"cannot reach nasd at {url}: Connection refused (is `nasd serve` running?" in result.stderr
