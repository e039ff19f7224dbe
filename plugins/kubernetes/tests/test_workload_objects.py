"""A workload (what a plugin wants run in a pod) as ConfigMap, Deployment and Service: valid for
Kubernetes, pinned to the node, owned by the resource, and written only when it changed."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from nasd.models import parse_resource
from nasd.workloads import HostPath, Port, SecretFile, Workload
from nasd_kubernetes.workloads import HASH, NameTaken, plan_changes, render_objects, workload_status

SHARE = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
                        "spec": {"protocol": "smb", "dataset": "media"}})
WORKLOAD = Workload(name="smb-media", image="registry.example/nasd:0.1.0", command=("/bin/sh", "/etc/x/start.sh"),
                    files=(("/etc/x/smb.conf", "[global]\n"), ("/etc/x/start.sh", "exec smbd\n")),
                    secret_files=(SecretFile("/etc/x/passwords/alice", "alice-pw", "password"),),
                    host_paths=(HostPath("/mnt/tank/media", "/shares/media"),), ports=(Port("smb", 445),))


def objects(workload: Workload = WORKLOAD) -> list[dict]:
    return render_objects(workload, SHARE, "uid-1", "node-a", "nasd-system")


def live(objs: list[dict]) -> dict:
    return {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objs}


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service"])
def test_every_object_is_valid_for_the_kubernetes_1_32_schema(kind: str) -> None:
    obj = next(o for o in objects() if o["kind"] == kind)
    kubernetes_validate.validate(obj, "1.32", strict=True)


def test_the_pod_runs_on_the_node_of_the_data_with_the_dataset_and_the_password_mounted() -> None:
    deployment = next(o for o in objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two smbd for one share
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/shares/media"]["mountPropagation"] == "HostToContainer"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/shares/media"]["name"]]["hostPath"] == {"path": "/mnt/tank/media", "type": "Directory"}
    assert volumes[mounts["/etc/x/passwords/alice"]["name"]]["secret"]["secretName"] == "alice-pw"


def test_every_object_is_owned_by_its_resource_so_kubernetes_deletes_them_with_it() -> None:
    for obj in objects():
        assert obj["metadata"]["ownerReferences"] == [
            {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "name": "media", "uid": "uid-1", "controller": True}]


def test_nothing_is_written_when_the_cluster_already_runs_it() -> None:
    assert [s for s, _ in plan_changes(objects(), {}, SHARE)] == ["create", "create", "create"]
    assert plan_changes(objects(), live(objects()), SHARE) == []


def test_a_changed_file_patches_the_config_and_restarts_the_pod() -> None:
    changed = Workload(**{**WORKLOAD.__dict__, "files": (("/etc/x/smb.conf", "[global]\n\tx = y\n"),
                                                        ("/etc/x/start.sh", "exec smbd\n"))})
    steps = plan_changes(objects(changed), live(objects()), SHARE)
    assert sorted((s, o["kind"]) for s, o in steps) == [("patch", "ConfigMap"), ("patch", "Deployment")]
    before = next(o for o in objects() if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = next(o for o in objects(changed) if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert before != after  # a new pod template: the pod restarts with the new smb.conf


def test_removing_the_workload_deletes_only_the_owners_objects() -> None:
    other = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "docs"},
                            "spec": {"protocol": "smb", "dataset": "docs"}})
    theirs = render_objects(Workload(**{**WORKLOAD.__dict__, "name": "smb-docs"}), other, "uid-2", "node-a",
                            "nasd-system")
    everything = {**live(objects()), **live(theirs)}
    steps = plan_changes([], everything, SHARE)
    assert sorted((s, o["metadata"]["name"]) for s, o in steps) == [("delete", "nasd-smb-media")] * 3


def test_the_status_shows_the_node_port_and_the_pods_available() -> None:
    service = next(o for o in objects() if o["kind"] == "Service")
    deployment = next(o for o in objects() if o["kind"] == "Deployment")
    assert workload_status(service, deployment, "node-a") == {
        "node": "node-a", "service": "nasd-system/nasd-smb-media", "podsAvailable": 0}
    service["spec"]["ports"][0]["nodePort"] = 30445
    deployment["status"] = {"availableReplicas": 1}
    status = workload_status(service, deployment, "node-a")
    assert (status["endpoint"], status["podsAvailable"]) == ("node-a:30445", 1)


def test_objects_of_another_owner_are_never_taken_over() -> None:
    other = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media2"},
                            "spec": {"protocol": "smb", "dataset": "media"}})
    with pytest.raises(NameTaken, match="NASShare.media"):
        plan_changes(render_objects(WORKLOAD, other, "uid-2", "node-a", "nasd-system"), live(objects()), other)


def test_a_hash_mismatch_alone_is_a_change() -> None:
    drifted = live(objects())
    drifted[("Service", "nasd-smb-media")]["metadata"]["annotations"][HASH] = "edited-by-hand"
    assert [(s, o["kind"]) for s, o in plan_changes(objects(), drifted, SHARE)] == [("patch", "Service")]


@pytest.mark.parametrize("bad", [{"name": "Smb_media"}, {"image": "nasd:0.1 ; rm -rf /"},
                                 {"files": (("/etc/../x", "y"),)}, {"command": ()}])
def test_a_workload_with_an_unsafe_value_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Workload(**{**WORKLOAD.__dict__, **bad})


def test_a_changed_password_secret_restarts_the_pod() -> None:
    from nasd_kubernetes.workloads import secrets_digest
    old = secrets_digest(WORKLOAD, {"alice-pw": {"data": {"password": "b2xk"}}})
    new = secrets_digest(WORKLOAD, {"alice-pw": {"data": {"password": "bmV3"}}})
    assert old != new
    steps = plan_changes(render_objects(WORKLOAD, SHARE, "uid-1", "node-a", "nasd-system", new),
                         live(render_objects(WORKLOAD, SHARE, "uid-1", "node-a", "nasd-system", old)), SHARE)
    assert [(s, o["kind"]) for s, o in steps] == [("patch", "Deployment")]
