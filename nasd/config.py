"""Daemon configuration: where state lives, where manifests come from, program paths, plugin settings.

Read from an optional YAML file (``--config``), then overridden by command-line options.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .manifests import read_manifest
from .models import ManifestError, format_validation_error
from .safe_yaml import InputRefused, load_yaml

DEFAULT_STATE_DIR = Path("/var/lib/nasd")
DEFAULT_SOCKET = Path("/run/nasd/nasd.sock")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stateDir: Path = DEFAULT_STATE_DIR
    manifests: list[Path] = Field(default_factory=list, description="Folders or files of manifests")
    socket: Path = DEFAULT_SOCKET
    listen: str | None = Field(default=None, description="HOST:PORT for TCP (e.g. 127.0.0.1:8740); needs a token")
    tokenFile: Path | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not re.match(r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])?$", host) or not port.isdigit() \
                    or not 0 <= int(port) < 65536:
                raise ValueError(f"{value!r} is not HOST:PORT; write it like 127.0.0.1:8740 or [::1]:8740")
        return value

    def listen_address(self) -> tuple[str, int] | None:
        """``listen`` as (host, port): the host without IPv6 brackets, 127.0.0.1 when left out."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)
    resyncSeconds: float = Field(default=60.0, gt=0, description="Periodic re-observation that corrects drift")
    manifestPollSeconds: float = Field(default=1.0, gt=0)
    maxBackoffSeconds: float = Field(default=300.0, gt=0)
    #: 4: ZFS groups concurrent changes into one transaction group, so most of the gain comes from the first few
    #: (on zfs-fuse a shell loop 4-way took 0.43 of the serial time, 8-way 0.35); on spinning disks every txg sync
    #: is seeks, and 4 already shares them without piling up mounts and seeks on a small NAS's CPU and disks.
    #: SSDs take 8 well. A program a plugin bounds (zfs-fuse's zfs: 1) stays within its bound whatever this is.
    applyConcurrency: int = Field(default=4, ge=1, le=64, description=(
        "Plans of independent resources (one group: e.g. sibling datasets, shares) applied at once; "
        "1 = one after another. 4 suits spinning disks, 8 SSDs"))
    programs: dict[str, str] = Field(default_factory=dict, description="Program name -> path (default: PATH)")
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per-plugin settings by plugin name")

    def plugin_settings(self, name: str) -> dict[str, Any]:
        return self.plugins.get(name, {})


class ConfigError(ValueError):
    pass


def load_config(path: Path | None, **overrides: Any) -> Config:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = load_yaml(read_manifest(path), str(path)) or {}
        except (InputRefused, ManifestError) as e:
            raise ConfigError(str(e)) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the configuration must be a mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path or 'configuration'}: " + "; ".join(format_validation_error(e))) from None
