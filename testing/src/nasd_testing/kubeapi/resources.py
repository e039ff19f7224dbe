"""The resource types the fake serves: built-ins plus whatever CRDs register.

A real apiserver knows each resource through its REST storage (``pkg/registry``)
and, for custom resources, through the CRD handler that the apiextensions
controllers set up once a CRD is ``Established``. Here one ``ResourceType``
per group/version/plural carries what the handlers need: kind, scope, which
verbs discovery advertises, whether there is a ``status`` subresource,
whether ``metadata.generation`` is tracked, and for custom resources the
``openAPIV3Schema`` and ``additionalPrinterColumns`` of that version.

Simpler than the real server: built-ins have no schema (any JSON object is
stored as sent, apart from the checks in ``server.py``), there is no
conversion between versions of a CRD (every served version sees the same
stored object, only ``apiVersion`` changes, i.e. ``conversion: None``), and
no admission plugins run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    has_status: bool = False
    tracks_generation: bool = False
    custom: bool = False
    schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    list_kind: str = ""
    #: extra ``fieldSelector`` labels besides metadata.name/metadata.namespace
    field_labels: tuple[str, ...] = ()
    #: whether create drops an incoming ``status`` (CRs with a status subresource, Deployments...)
    create_resets_status: bool = False

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or f"{self.kind}List"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        return (self.group, self.plural)


_EVENT_FIELDS = (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
)
_POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
               "status.phase", "status.podIP", "status.nominatedNodeName")


def builtin_types() -> list[ResourceType]:
    """The built-in resources a NAS controller and kubectl touch."""
    return [
        ResourceType("", "v1", "namespaces", "Namespace", False, short_names=["ns"], has_status=True,
                     field_labels=("status.phase",)),
        ResourceType("", "v1", "nodes", "Node", False, short_names=["no"], has_status=True,
                     field_labels=("spec.unschedulable",)),
        ResourceType("", "v1", "secrets", "Secret", True, field_labels=("type",)),
        ResourceType("", "v1", "configmaps", "ConfigMap", True, short_names=["cm"]),
        ResourceType("", "v1", "services", "Service", True, short_names=["svc"], categories=["all"],
                     has_status=True),
        ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=["sa"]),
        ResourceType("", "v1", "events", "Event", True, short_names=["ev"], field_labels=_EVENT_FIELDS),
        ResourceType("", "v1", "pods", "Pod", True, short_names=["po"], categories=["all"], has_status=True,
                     field_labels=_POD_FIELDS),
        ResourceType("apps", "v1", "deployments", "Deployment", True, short_names=["deploy"], categories=["all"],
                     has_status=True, tracks_generation=True, create_resets_status=True),
        ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, short_names=["ds"], categories=["all"],
                     has_status=True, tracks_generation=True, create_resets_status=True),
        ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                     short_names=["crd", "crds"], categories=["api-extensions"], has_status=True,
                     tracks_generation=True),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ``ResourceType`` per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        result.append(ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or "",
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []),
            has_status="status" in subresources,
            tracks_generation=True,
            custom=True,
            schema=((version.get("schema") or {}).get("openAPIV3Schema")),
            printer_columns=list(version.get("additionalPrinterColumns") or []),
            list_kind=names.get("listKind") or "",
            create_resets_status="status" in subresources,
        ))
    return result


class Registry:
    """Every served group/version/plural; CRDs add and remove entries at run time."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0  # bumps on every change (discovery.py caches the OpenAPI index by it)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype
        self.generation += 1

    def remove(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[key]
        self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_group_resource(self, gr: tuple[str, str]) -> ResourceType | None:
        """The first served version of a group/resource (the stored one for the CRDs here)."""
        for (group, _version, plural), rtype in self._types.items():
            if (group, plural) == gr:
                return rtype
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rtype in self._types.values():
            if rtype.api_version == api_version and rtype.kind == kind:
                return rtype
        return None

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for (g, v, _p), t in self._types.items() if (g, v) == (group, version)]

    def group_versions(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((g, v) for g, v, _ in self._types))
