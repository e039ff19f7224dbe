"""A private Samba for a test: smbd supervised by nasd on a free loopback port, users in a private
identity root resolved through nss_wrapper (fixture ``smb_env``: the test's environment preloads it, so nasd, in
process or as ``nasd serve``, and every program it runs resolve users from there), shares on datasets of the
test's real zfs-fuse pool. Shared by the SMB plugin's tests and the end-to-end tests of the plugins that extend
it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _nss_wrapper_library() -> str:
    for candidate in [*Path("/usr/lib").glob("*/libnss_wrapper.so*"), *Path("/usr/lib").glob("libnss_wrapper.so*")]:
        return str(candidate)
    if os.environ.get("NASD_REQUIRE_ZFS"):
        pytest.fail("libnss_wrapper is not installed (apt-get install libnss-wrapper)")
    pytest.skip("libnss_wrapper is not installed (apt-get install libnss-wrapper)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmbEnv:
    root: Path
    port: int
    identity_root: Path
    secrets: Path

    def settings(self) -> dict[str, Any]:
        return {"port": self.port, "interfaces": ["lo"], "identityRoot": str(self.identity_root),
                "hostName": "127.0.0.1"}

    def secret(self, user: str, password: str, mode: int = 0o600) -> str:
        path = self.secrets / user
        path.write_text(password + "\n")
        os.chmod(path, mode)
        return str(path)

    def nss_wrapper(self) -> dict[str, str]:
        """The variables that make a program resolve users and groups from the identity root."""
        return {"LD_PRELOAD": _nss_wrapper_library(),
                "NSS_WRAPPER_PASSWD": str(self.identity_root / "etc" / "passwd"),
                "NSS_WRAPPER_GROUP": str(self.identity_root / "etc" / "group")}

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.nss_wrapper()}

    def local_users(self, **users: tuple[int, str]) -> list[dict[str, Any]]:
        """Manifests of the local directory ``local`` and one NASUser per ``name=(uid, password)``, each
        password in a secret file of its own."""
        d = {"apiVersion": "nasd.io/v1alpha1"}
        out = [d | {"kind": "NASDirectory", "metadata": {"name": "local"}, "spec": {"type": "local"}}]
        for name, (uid, password) in users.items():
            out.append(d | {"kind": "NASUser", "metadata": {"name": name}, "spec": {
                "directory": "local", "uid": uid, "passwordSecretRef": {"file": self.secret(name, password)}}})
        return out

    def smbclient(self, share: str, user: str | None, password: str | None, command: str,
                  cwd: Path | None = None) -> subprocess.CompletedProcess:
        auth = ["-U", f"{user}%{password}"] if user else ["-N"]
        return subprocess.run(
            ["smbclient", f"//127.0.0.1/{share}", "-p", str(self.port), *auth, "-m", "SMB3", "-c", command],
            capture_output=True, text=True, timeout=30, cwd=cwd,
        )

    def uid_of(self, name: str) -> int | None:
        for line in (self.identity_root / "etc" / "passwd").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == name:
                return int(parts[2])
        return None


def smb_conf_file(nasd: Any) -> Path:
    """Where the SMB plugin of the daemon object ``nasd`` keeps smb.conf."""
    from nasd_smb.settings import load_settings
    return load_settings(nasd.ctx.settings("smb"), nasd.ctx.state_dir).config_file


def make_identity_root(root: Path) -> Path:
    """A private identity root: an empty system's etc/passwd, group, shadow and gshadow (nss_wrapper reads
    them instead of the machine's)."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\nusers:x:100:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    for f in ("shadow", "gshadow"):
        os.chmod(etc / f, 0o600)
    return root


@pytest.fixture
def smb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmbEnv:
    for program in ("smbd", "smbclient", "testparm", "useradd"):
        if not shutil.which(program) and not Path(f"/usr/sbin/{program}").exists():
            if os.environ.get("NASD_REQUIRE_ZFS"):
                pytest.fail(f"{program} is not installed (make test installs Samba)")
            pytest.skip(f"{program} is not installed")
    # pytest's temporary folders are 0700: let the share users (smbd acting as them) reach the pools
    for parent in [tmp_path, *tmp_path.parents]:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    root = make_identity_root(tmp_path / "identity")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    env = SmbEnv(root=tmp_path, port=free_port(), identity_root=root, secrets=secrets)
    # the identity root's users, for every program the test starts from now on: nasd (``nasd serve``, or in this
    # process what it runs) and smbd, testparm, pdbedit, smbpasswd under it (no setting of the SMB plugin's)
    for name, value in env.nss_wrapper().items():
        monkeypatch.setenv(name, value)
    return env
