"""The Kubernetes API permissions the watcher plugin needs, and nothing more.

This list is the contract between the plugin and ``deploy/rbac.yaml``: ``tests/test_deploy.py``
checks that the RBAC objects grant exactly these permissions to the ServiceAccount ``nasd`` (every
one of them, and none beyond them). Change both together.

- The eight nasd.io kinds (all cluster-scoped): read and watch them, update or patch them to add and
  remove the plugin's finalizer, and write their ``/status`` subresources.
- Nodes (cluster-wide, read only): whether the node a resource names still exists.
- Events, only in the namespace ``default``: events about cluster-scoped objects live there.
- Secrets, only in the nasd namespace (read only): ``NASUser.spec.passwordSecretRef: {name, key}``
  names a Secret there.
- ConfigMaps, Services and apps Deployments, only in the nasd namespace: the SMB plugin's
  ``mode: pod`` runs each SMB share as its own Deployment and Service there.

``namespace`` is ``None`` for a cluster-wide permission (a ClusterRole and ClusterRoleBinding),
``"default"`` for the namespace ``default``, and the placeholder ``NASD_NAMESPACE`` for the namespace
nasd runs in (the pod's ``NASD_NAMESPACE`` environment variable; ``nasd-system`` in ``deploy/``).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "nasd.io"
NASD_NAMESPACE = "NASD_NAMESPACE"  # placeholder: the namespace nasd runs in

PLURALS: tuple[str, ...] = (
    "zpools",
    "zdatasets",
    "nasshares",
    "nasdirectories",
    "nasusers",
    "nasgroups",
    "zsnapshotschedules",
    "zsnapshotrestores",
)

READ = ("get", "list", "watch")
MANAGE = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass(frozen=True)
class Permission:
    group: str  # API group; "" is the core group
    resource: str  # a plural, or "plural/subresource"
    verbs: tuple[str, ...]
    namespace: str | None  # None = cluster-wide; "default" or NASD_NAMESPACE = in that namespace only


REQUIRED: list[Permission] = [
    *(Permission(GROUP, plural, READ + ("patch", "update"), None) for plural in PLURALS),
    *(Permission(GROUP, f"{plural}/status", ("get", "patch", "update"), None) for plural in PLURALS),
    Permission("", "nodes", READ, None),
    Permission("", "events", ("create", "patch"), "default"),
    Permission("", "secrets", READ, NASD_NAMESPACE),
    Permission("", "configmaps", MANAGE, NASD_NAMESPACE),
    Permission("", "services", MANAGE, NASD_NAMESPACE),
    Permission("apps", "deployments", MANAGE, NASD_NAMESPACE),
]
