"""The pure half of the watcher: which node takes which object, what reaches the core, what is written back."""

from __future__ import annotations

from typing import Any

from nasd_kubernetes.convert import status_patch, to_resource
from nasd_kubernetes.desired import desired_view
from nasd_kubernetes.finalizers import FINALIZER, needs_finalizer, without_finalizer
from nasd_kubernetes.reporting import transition
from nasd_kubernetes.scope import placement

V = "nasd.io/v1alpha1"


def obj(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": kind, "metadata": {"name": name, "resourceVersion": "7", "generation": 2,
                                                       "uid": f"uid-{name}", **meta}, "spec": spec}


def cluster(*objs: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


POOL = {"vdevs": [{"type": "stripe", "devices": ["/srv/tank.img"]}], "node": "node-a"}
OBJECTS = cluster(
    obj("ZPool", "tank", POOL),
    obj("ZPool", "backup", {**POOL, "node": "node-b"}),
    obj("ZDataset", "media", {"pool": "tank", "path": "media"}),
    obj("ZDataset", "archive", {"pool": "backup", "path": "archive"}),
    obj("NASShare", "media", {"protocol": "smb", "dataset": "media"}),
    obj("NASDirectory", "local", {"type": "local"}),
    obj("ZSnapshotSchedule", "both", {"datasets": ["media", "archive"], "schedule": {"cron": "0 * * * *"},
                                      "retention": {"hourly": 24}}),
    obj("NASShare", "lost", {"protocol": "smb", "dataset": "nowhere"}),
)


def test_datasets_and_shares_follow_their_pools_node_and_identities_go_to_every_node() -> None:
    assert placement("ZDataset", "media", OBJECTS).includes("node-a")
    assert not placement("ZDataset", "media", OBJECTS).includes("node-b")
    assert placement("NASShare", "media", OBJECTS).nodes == {"node-a"}
    assert placement("NASDirectory", "local", OBJECTS).includes("node-b")
    lost = placement("NASShare", "lost", OBJECTS)
    assert not lost.nodes and "ZDataset nowhere does not exist" in lost.problem


def test_a_schedule_over_datasets_of_two_nodes_belongs_to_none_and_says_so() -> None:
    where = placement("ZSnapshotSchedule", "both", OBJECTS)
    assert not where.nodes and "several nodes (node-a, node-b)" in where.problem


def test_a_pool_without_a_node_is_taken_by_no_node() -> None:
    objs = cluster(obj("ZPool", "tank", {**POOL, "node": None}))
    assert "set spec.node" in placement("ZPool", "tank", objs).problem


def test_the_view_of_a_node_holds_its_objects_and_every_identity() -> None:
    view = desired_view(OBJECTS, "node-a", {})
    assert set(view.resources) == {("ZPool", "tank"), ("ZDataset", "media"), ("NASShare", "media"),
                                   ("NASDirectory", "local")}
    assert view.elsewhere[("ZDataset", "archive")] == {"node-b"}
    assert set(view.unplaced) == {("ZSnapshotSchedule", "both"), ("NASShare", "lost")}


def test_what_the_cluster_adds_to_an_object_never_reaches_the_core() -> None:
    a = obj("NASShare", "media", {"protocol": "smb", "dataset": "media"})
    b = obj("NASShare", "media", {"protocol": "smb", "dataset": "media"}, resourceVersion="99",
            finalizers=[FINALIZER], managedFields=[{"manager": "kubectl"}], creationTimestamp="2026-11-26T10:00:00Z",
            annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"})
    b["status"] = {"conditions": []}
    assert to_resource(a).to_manifest() == to_resource(b).to_manifest()
    assert to_resource(b).metadata.generation == 2  # the API server's generation is kept


def test_an_object_being_deleted_is_no_longer_desired_on_its_node() -> None:
    objs = dict(OBJECTS)
    objs[("NASShare", "media")] = obj("NASShare", "media", {"protocol": "smb", "dataset": "media"},
                                      deletionTimestamp="2026-11-26T10:00:00Z", finalizers=[FINALIZER])
    view = desired_view(objs, "node-a", {})
    assert ("NASShare", "media") not in view.resources and ("NASShare", "media") in view.deleting


def test_an_invalid_edit_keeps_the_last_valid_version_desired() -> None:
    good = to_resource(OBJECTS[("NASShare", "media")])
    objs = dict(OBJECTS)
    objs[("NASShare", "media")] = obj("NASShare", "media", {"protocol": "smb", "dataset": "media",
                                                            "smb": {"comment": "bad\nline"}})
    view = desired_view(objs, "node-a", {("NASShare", "media"): good})
    assert view.resources[("NASShare", "media")] is good
    assert "smb.comment" in view.invalid[("NASShare", "media")]
    never_valid = desired_view(objs, "node-a", {})
    assert ("NASShare", "media") not in never_valid.resources


def test_the_status_patch_holds_only_changes_and_nulls_what_went_away() -> None:
    written = {"conditions": [{"type": "Ready", "status": "True"}], "path": "/mnt/tank/media", "unc": "\\\\h\\m"}
    assert status_patch(written, written) is None
    assert status_patch({"conditions": written["conditions"], "path": "/mnt/tank/media"}, written) == \
        {"status": {"unc": None}}
    assert status_patch({"conditions": []}, None) == {"status": {"conditions": []}}


def test_events_mark_ready_transitions_only() -> None:
    ready = {"type": "Ready", "status": "True", "message": "as specified"}
    failed = {"type": "Ready", "status": "False", "reason": "CommandFailed", "message": "zfs said no"}
    assert transition(None, ready)[:2] == ("Normal", "Created")
    assert transition(ready, failed)[:2] == ("Warning", "CommandFailed")
    assert transition(failed, ready)[:2] == ("Normal", "Recovered")
    assert transition(ready, {**ready, "message": "applied: x"}) is None
    assert transition(failed, failed) is None


def test_only_objects_whose_deletion_does_something_get_the_finalizer() -> None:
    assert needs_finalizer(OBJECTS[("NASShare", "media")])
    assert not needs_finalizer(OBJECTS[("ZDataset", "media")])  # Retain: nothing to do on the node
    assert needs_finalizer(obj("ZDataset", "d", {"pool": "tank", "path": "d", "deletionPolicy": "Destroy"}))
    assert not needs_finalizer(OBJECTS[("NASDirectory", "local")])
    other = obj("NASShare", "s", {}, finalizers=["example.com/keep", FINALIZER])
    assert without_finalizer(other) == {"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "7"}}


def test_each_node_reports_its_own_entry_and_every_node_computes_the_same_summary() -> None:
    from nasd_kubernetes.reporting import per_node
    mine = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "as specified",
                            "observedGeneration": 3, "lastTransitionTime": "2026-11-26T10:00:00Z"}], "uid": 3001}
    a = per_node(mine, {}, "node-a")
    assert set(a) == {"conditions", "nodes"}  # never a node's own top-level fields: the next node would undo them
    b = per_node({**mine, "conditions": [{**mine["conditions"][0], "status": "False", "reason": "UIDInUse",
                                          "message": "uid 3001 is taken"}]}, a, "node-b")
    assert b["nodes"]["node-a"]["status"] == "True" and b["nodes"]["node-b"]["reason"] == "UIDInUse"
    assert (b["conditions"][0]["status"], b["conditions"][0]["reason"]) == ("False", "UIDInUse")
    assert b["conditions"][0]["message"].startswith("node node-b: uid 3001 is taken")
    again_from_a = per_node(mine, b, "node-a")
    assert again_from_a["conditions"][0]["message"] == b["conditions"][0]["message"]  # the same summary on A
    gone = per_node(mine, b, "node-a", cluster_nodes={"node-a"})  # node-b left the cluster
    assert set(gone["nodes"]) == {"node-a"} and gone["conditions"][0]["status"] == "True"
