"""The SMB plugin's settings (``plugins: {smb: {...}}`` in the nasd configuration)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nasd.errors import PermanentError
from nasd.models import format_validation_error
from nasd.workloads import IMAGE

_IFACE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
_WORD = re.compile(r"^[A-Za-z0-9_.-]([A-Za-z0-9_. -]{0,62}[A-Za-z0-9_.-])?$")  # no space at either end


class SMBSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["supervised", "system", "pod"] = Field(
        default="supervised", description="supervised: nasd runs its own smbd; system: drive the system's smbd; "
                                          "pod: each share runs its own smbd in a pod (needs the Kubernetes plugin)"
    )
    podImage: str = Field(default="nasd:0.1.0", pattern=f"^(?:{IMAGE.pattern})$",
                          description="pod mode: the image with smbd (the nasd image has it)")
    serviceType: Literal["NodePort", "ClusterIP", "LoadBalancer"] = Field(
        default="NodePort", description="pod mode: how each share's Service is reached")
    configFile: Path | None = Field(default=None, description="smb.conf nasd writes [<runDir>/smb.conf]")
    runDir: Path | None = Field(default=None, description="Samba's state, locks, passdb, logs [<stateDir>/smb]")
    port: int = Field(default=445, ge=1, le=65535)
    interfaces: list[str] = Field(default_factory=list, description="Listen only on these (names or addresses)")
    workgroup: str = "WORKGROUP"
    serverString: str = "nasd"
    hostName: str | None = Field(default=None, description="The host name in UNC paths [this host's name]")
    identityRoot: Path = Field(default=Path("/"), description="Root whose etc/passwd and etc/group hold the users")
    nssWrapper: bool = Field(default=False, description="Resolve users from identityRoot with nss_wrapper (tests)")

    @field_validator("interfaces")
    @classmethod
    def _ifaces(cls, value: list[str]) -> list[str]:
        for v in value:
            if not _IFACE.match(v):
                raise ValueError(f"{v!r} is not an interface name or address")
        return value

    @field_validator("workgroup", "serverString")
    @classmethod
    def _words(cls, value: str) -> str:
        if not _WORD.match(value):
            raise ValueError(f"{value!r}: letters, digits, inner spaces, '_', '.', '-' only")
        return value

    @property
    def run_dir(self) -> Path:
        assert self.runDir is not None
        return self.runDir

    @property
    def config_file(self) -> Path:
        assert self.configFile is not None
        return self.configFile

    @property
    def host(self) -> str:
        return self.hostName or socket.gethostname()

    def env(self) -> dict[str, str]:
        """Environment for smbd, pdbedit and smbpasswd (nss_wrapper when asked)."""
        if not self.nssWrapper:
            return {}
        return {
            "LD_PRELOAD": _nss_wrapper_library(),
            "NSS_WRAPPER_PASSWD": str(self.identityRoot / "etc" / "passwd"),
            "NSS_WRAPPER_GROUP": str(self.identityRoot / "etc" / "group"),
        }


def _nss_wrapper_library() -> str:
    for candidate in Path("/usr/lib").glob("*/libnss_wrapper.so*"):
        return str(candidate)
    for candidate in Path("/usr/lib").glob("libnss_wrapper.so*"):
        return str(candidate)
    raise PermanentError("nssWrapper is set but libnss_wrapper is not installed", reason="NSSWrapperMissing")


def load_settings(raw: dict[str, Any], state_dir: Path) -> SMBSettings:
    try:
        settings = SMBSettings.model_validate(raw)
    except ValidationError as e:
        raise PermanentError("plugins.smb: " + "; ".join(format_validation_error(e)), reason="BadSettings") from None
    run_dir = settings.runDir or state_dir / "smb"
    default_conf = run_dir / "smb.conf" if settings.mode != "system" else Path("/etc/samba/smb.conf")
    return settings.model_copy(update={"runDir": run_dir, "configFile": settings.configFile or default_conf})
