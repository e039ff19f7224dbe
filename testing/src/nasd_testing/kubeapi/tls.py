"""A self-signed certificate for the HTTPS listener that kubeconfigs point at.

Why HTTPS at all: kubectl (client-go's ``clientcmd``) only applies a
kubeconfig user's credentials - bearer token, client certificate, exec
plugin - when the server URL is ``https``; over plain HTTP it sends no
``Authorization`` header at all, so a server that requires a token would
answer every kubectl request with 401. A real apiserver only speaks HTTPS, so
the kubeconfig written by ``FakeKubeAPI.write_kubeconfig`` names an HTTPS
listener with this certificate as ``certificate-authority-data`` (the
certificate is its own CA; it is valid for ``127.0.0.1`` and ``localhost``).
The plain HTTP listener (``FakeKubeAPI.url``) stays for raw requests.

The key pair (and the server's ``SSLContext``) is made once per process with
the ``openssl`` command line tool (``cryptography`` is not a dependency);
without ``openssl`` there is no HTTPS listener and kubeconfigs point at the
HTTP one.
"""

from __future__ import annotations

import functools
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert_pem: bytes
    #: the HTTPS listener's context, with this key pair loaded
    server_context: ssl.SSLContext


@functools.cache
def self_signed() -> Certificate | None:
    """The process's certificate for 127.0.0.1 (made on first use), or None without ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-subj", "/CN=fake-kube-apiserver",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=30)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        return Certificate(cert.read_bytes(), context)
