"""The Kubernetes plugin's settings (``plugins: {kubernetes: {...}}`` in the nasd configuration).

In a cluster every value has a default that fits the DaemonSet in ``deploy/``: the node from
``NODE_NAME`` and the namespace from ``NASD_NAMESPACE`` (both from the downward API), the
in-cluster ServiceAccount for credentials.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasd.plugin import DNS_NAME, load_plugin_settings

#: the plugin's name: its settings' key under ``plugins``, and the name of its feed source
NAME = "kubernetes"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(default=None, description="A kubeconfig file; none: the in-cluster ServiceAccount")
    context: str | None = Field(default=None, description="The kubeconfig context [its current context]")
    nodeName: str | None = Field(default=None, description="This node's name [$NODE_NAME, else the host name]")
    namespace: str | None = Field(default=None, description="nasd's namespace: Secrets and share pods [$NASD_NAMESPACE]")
    eventsNamespace: str = Field(default="default", description="Where Events about cluster-scoped objects go")
    watchTimeoutSeconds: int = Field(default=300, ge=1, le=3600, description="Each watch request's timeoutSeconds")
    relistSeconds: float = Field(default=900.0, gt=0, description="A full re-list this often, whatever the watches say")
    maxBackoffSeconds: float = Field(default=30.0, gt=0, description="Reconnect backoff cap after errors")

    @field_validator("namespace", "eventsNamespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a namespace name (a DNS label)")
        return value

    @field_validator("nodeName")
    @classmethod
    def _node(cls, value: str | None) -> str | None:
        if value is not None and not DNS_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a node name")
        return value

    @property
    def node(self) -> str:
        assert self.nodeName is not None
        return self.nodeName

    @property
    def ns(self) -> str:
        assert self.namespace is not None
        return self.namespace


def load_settings(raw: dict[str, Any]) -> KubernetesSettings:
    settings = load_plugin_settings(KubernetesSettings, raw, "plugins.kubernetes")
    return load_plugin_settings(KubernetesSettings, {  # (the defaults from the environment are validated too)
        **settings.model_dump(),
        "nodeName": settings.nodeName or os.environ.get("NODE_NAME") or socket.gethostname().lower(),
        "namespace": settings.namespace or os.environ.get("NASD_NAMESPACE") or "nasd-system",
    }, "plugins.kubernetes")
