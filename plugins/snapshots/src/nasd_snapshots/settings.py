"""The snapshots plugin's settings (``plugins: {snapshots: {...}}`` in the nasd configuration)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nasd.plugin import load_plugin_settings


class SnapshotsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relistSeconds: float | None = Field(default=None, gt=0, description=(
        "List the snapshots again at least this often when nothing else asks for it [resyncSeconds]"))

    def relist_every(self, resync_seconds: float) -> float:
        return self.relistSeconds if self.relistSeconds is not None else float(resync_seconds)


def load_settings(raw: dict[str, Any]) -> SnapshotsSettings:
    return load_plugin_settings(SnapshotsSettings, raw, "plugins.snapshots")
