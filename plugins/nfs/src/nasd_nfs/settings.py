"""The NFS plugin's settings (``plugins: {nfs: {...}}`` in the nasd configuration)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasd.plugin import load_plugin_settings


class NFSSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exportsFile: Path = Field(default=Path("/etc/exports.d/nasd.exports"),
                              description="The one file nasd writes, in /etc/exports.d")
    systemExports: Path = Field(default=Path("/etc/exports"), description="Read only, for foreign exports")
    etab: Path = Field(default=Path("/var/lib/nfs/etab"), description="exportfs's table of what is in effect")
    hostName: str | None = Field(default=None, description="The server name in mount commands [this host's name]")
    reloadSettleSeconds: float = Field(default=0.3, ge=0, le=10, description=(
        "In the daemon: how long a written exports file waits for more changes before exportfs -ra "
        "(a burst of edits runs it once)"))

    @field_validator("exportsFile")
    @classmethod
    def _exports_file(cls, value: Path) -> Path:
        if value.parent != Path("/etc/exports.d") or value.suffix != ".exports" or value.name.startswith("."):
            raise ValueError("must be a file ending in .exports in /etc/exports.d (the only folder exportfs reads)")
        return value

    @property
    def host(self) -> str:
        return self.hostName or socket.gethostname()


def load_settings(raw: dict[str, Any]) -> NFSSettings:
    return load_plugin_settings(NFSSettings, raw, "plugins.nfs")
