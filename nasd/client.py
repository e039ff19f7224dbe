"""A small client for the REST API (used by the CLI): one HTTP/1.1 request per call, over the daemon's unix
socket, or over TCP (``--server http://HOST:PORT``, or https) with a bearer token.

It uses the standard library's ``socket`` and ``json`` only: importing aiohttp, asyncio or even ``http.client``
(which imports ``email`` and ``ssl``) would take longer than a whole ``nasd get`` may take (issue 18;
tests/test_cli_start.py keeps it so). Each request says ``Connection: close`` and the answer is read to its
Content-Length (the daemon's aiohttp always sends one), or to the end of a chunked body (a proxy in front).
"""

from __future__ import annotations

import json
import socket as socketlib
from typing import Any
from urllib.parse import quote, urlsplit

from .kind_names import GROUP_VERSION

#: where ``nasd serve`` listens unless told otherwise (the same as ``nasd.config.DEFAULT_SOCKET``)
DEFAULT_SOCKET = "/run/nasd/nasd.sock"
#: seconds to connect, and between two reads of the answer (aiohttp's default total timeout was 5 min)
TIMEOUT = 300.0
#: the longest answer read (its head, or its body)
MAX_HEAD = 64 * 1024
MAX_BODY = 1 << 30


class APIError(Exception):
    """The API answered with an error (or with something that is not its JSON)."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)
        causes = body.get("details", {}).get("causes", []) if isinstance(body, dict) else []
        lines = [message] + [f"  - {c.get('message')}" for c in causes] if causes else [message]
        super().__init__("\n".join(str(x) for x in lines))


class NotHTTP(ConnectionError):
    """What answered is not an HTTP server (or the answer was cut short)."""


class OptionError(ValueError):
    """A ``--server`` that is not an http(s) URL, or a ``--token`` that cannot be sent in a header."""


class Client:
    def __init__(self, socket: str | None = None, server: str | None = None, token: str | None = None,
                 timeout: float = TIMEOUT):
        self.socket = None if server else socket
        self.token = token
        self.timeout = timeout
        self.base = (server or "http://nasd").rstrip("/")
        url = urlsplit(self.base)
        try:
            port = url.port
        except ValueError:
            port = -1
        if url.scheme not in ("http", "https") or not url.hostname or port == -1 or url.query or url.fragment:
            raise OptionError(f"--server: {server!r} is not a URL like http://HOST:PORT")
        if token is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
            raise OptionError("--token: a token is one line of printable characters (is it the whole file?)")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        self.port = port or (443 if self.tls else 80)
        self.host_header = url.netloc.rpartition("@")[2]
        self.prefix = quote(url.path, safe="/%:@!$&'()*+,;=~")
        self.where = self.socket if self.socket else self.base

    def request(self, method: str, path: str, body: Any = None) -> Any:
        status, text = self._exchange(method, self.prefix + path, body)
        try:
            data = json.loads(text)
        except ValueError:  # not an answer of the nasd API (a wrong --server, no such path)
            where = f"{self.base}{path}"
            message = f"HTTP {status} without a JSON body from {where}: {text.strip()[:200]}"
            raise APIError(status, {"message": message}) from None
        if status >= 400:
            raise APIError(status, data)
        return data

    def list(self, plural: str) -> list[dict]:
        return self.request("GET", f"/apis/{GROUP_VERSION}/{plural}")["items"]

    def get(self, plural: str, name: str) -> dict:
        return self.request("GET", f"/apis/{GROUP_VERSION}/{plural}/{_segment(name)}")

    def apply(self, plural: str, manifest: dict) -> dict:
        return self.request("POST", f"/apis/{GROUP_VERSION}/{plural}", manifest)

    def delete(self, plural: str, name: str) -> dict:
        return self.request("DELETE", f"/apis/{GROUP_VERSION}/{plural}/{_segment(name)}")

    # -- one HTTP/1.1 exchange ----------------------------------------------------------------------------

    def _connect(self) -> socketlib.socket:
        if self.socket:
            sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.socket)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socketlib.create_connection((self.host, self.port), timeout=self.timeout)
        if not self.tls:
            return sock
        import ssl  # only for an https --server

        try:
            return ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise

    def _exchange(self, method: str, target: str, body: Any) -> tuple[int, str]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}", "Connection: close",
                "Accept: application/json", f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if self.token:
            head.append(f"Authorization: Bearer {self.token}")
        with self._connect() as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            status, headers, raw = _read_answer(sock, self.where)
        charset = "utf-8"
        for part in headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return status, raw.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return status, raw.decode("utf-8", "replace")


def _read_answer(sock: socketlib.socket, where: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of the answer on ``sock``."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            raise NotHTTP(f"the answer from {where} is not HTTP (no end of its head in {MAX_HEAD} bytes)")
        chunk = sock.recv(65536)
        if not chunk:
            raise NotHTTP(f"{where} closed the connection before a complete HTTP answer")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, code = lines[0].partition(" ")
    code = code.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        raise NotHTTP(f"the answer from {where} is not HTTP: {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return int(code), headers, _unchunk(sock, rest, where)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY:
            raise NotHTTP(f"the answer from {where} has a Content-Length of {length[:40]!r}")
        return int(code), headers, _read_exactly(sock, rest, int(length), where)
    return int(code), headers, _read_to_end(sock, rest, where)


def _read_exactly(sock: socketlib.socket, data: bytes, length: int, where: str) -> bytes:
    parts, have = [data], len(data)
    while have < length:
        chunk = sock.recv(min(1 << 20, length - have))
        if not chunk:
            raise NotHTTP(f"{where} closed the connection {length - have} bytes before the end of its answer")
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)[:length]


def _read_to_end(sock: socketlib.socket, data: bytes, where: str) -> bytes:
    parts, have = [data], len(data)
    while chunk := sock.recv(1 << 20):
        parts.append(chunk)
        have += len(chunk)
        if have > MAX_BODY:
            raise NotHTTP(f"the answer from {where} is longer than {MAX_BODY} bytes")
    return b"".join(parts)


def _unchunk(sock: socketlib.socket, data: bytes, where: str) -> bytes:
    """The body of a chunked answer (the connection closes after it: ``Connection: close``)."""
    raw = _read_to_end(sock, data, where)
    body: list[bytes] = []
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        size_text = raw[pos:end].split(b";")[0].strip() if end >= 0 else b""
        try:
            size = int(size_text, 16)
        except ValueError:
            raise NotHTTP(f"the chunked answer from {where} is malformed") from None
        if size == 0:
            return b"".join(body)
        start = end + 2
        if size < 0 or start + size > len(raw):
            raise NotHTTP(f"the chunked answer from {where} was cut short")
        body.append(raw[start:start + size])
        pos = start + size + 2


def _segment(name: str) -> str:
    """``name`` as one path segment: a '?', '#' or '/' in it must not change which object is meant."""
    return quote(name, safe="")
