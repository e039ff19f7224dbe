"""The Time Machine plugin's settings (``plugins: {timemachine: {...}}`` in the nasd configuration)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nasd.plugin import load_plugin_settings

from .options import DEFAULT_MODEL


class TimeMachineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mdns: Literal["auto", "avahi", "zeroconf", "off"] = Field(default="auto", description=(
        "How the records are published: avahi when it runs, else nasd itself (auto), avahi, zeroconf, or off"))
    hostName: str | None = Field(default=None, description="The name the shares are advertised as [this host's]")
    interfaces: list[str] = Field(default_factory=list, description="IPv4 addresses to publish on [all]")
    model: str = Field(default=DEFAULT_MODEL, description="The device model Finder shows (its icon)")
    avahiServicesDir: Path = Field(default=Path("/etc/avahi/services"), description="avahi-daemon's service folder")

    @property
    def host(self) -> str:
        name = self.hostName or socket.gethostname().split(".")[0]
        return re.sub(r"[^A-Za-z0-9-]", "-", name)[:63] or "nasd"


def load_settings(raw: dict[str, Any]) -> TimeMachineSettings:
    return load_plugin_settings(TimeMachineSettings, raw, "plugins.timemachine")
