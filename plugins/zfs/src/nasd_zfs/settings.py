"""The ZFS plugin's settings (``plugins: {zfs: {...}}`` in the nasd configuration)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasd.plugin import load_plugin_settings


class ZFSSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mountRoot: str = Field(default="/mnt", description="Pools mount at <mountRoot>/<pool> unless a spec says where")
    allowedMountpoints: list[str] = Field(default_factory=list, description=(
        "Folders besides mountRoot (and each pool's own mountpoint) that manifests may mount datasets below"))

    @field_validator("mountRoot")
    @classmethod
    def _mount_root(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("allowedMountpoints")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        relative = [p for p in value if not os.path.isabs(p)]
        if relative:
            raise ValueError(f"must be absolute paths (not {', '.join(relative)})")
        return value


def load_settings(raw: dict[str, Any]) -> ZFSSettings:
    return load_plugin_settings(ZFSSettings, raw, "plugins.zfs")
