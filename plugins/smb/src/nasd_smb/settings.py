"""The SMB plugin's settings (``plugins: {smb: {...}}`` in the nasd configuration)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasd.plugin import IMAGE, load_plugin_settings

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


def load_settings(raw: dict[str, Any], state_dir: Path) -> SMBSettings:
    settings = load_plugin_settings(SMBSettings, raw, "plugins.smb")
    run_dir = settings.runDir or state_dir / "smb"
    default_conf = run_dir / "smb.conf" if settings.mode != "system" else Path("/etc/samba/smb.conf")
    return settings.model_copy(update={"runDir": run_dir, "configFile": settings.configFile or default_conf})
