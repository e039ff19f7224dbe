"""The planner is a pure function: given a spec and what was observed, exactly these commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasd.conditions import set_condition
from nasd.errors import TemporaryError
from nasd.models import parse_resource
from nasd.plugin import Observed
from nasd_zfs.control import observe_failure
from nasd_zfs.dialect import Dialect, parse_dialect
from nasd_zfs.parse import PoolInfo, VdevInfo
from nasd_zfs.plan import ZfsObservation, observation, plan_dataset, plan_dataset_absent, plan_pool, plan_pool_absent

DATA = Path(__file__).parent / "data"


def dialect(name: str) -> Dialect:
    r = lambda f: (DATA / name / f).read_text()  # noqa: E731
    return parse_dialect(r("zfs-usage.txt"), r("zfs-get-usage.txt"), r("zpool-usage.txt"))


FUSE, OPENZFS = dialect("zfs-fuse"), dialect("openzfs-2.1")


def pool(**spec):
    spec = {"vdevs": [{"type": "mirror", "devices": ["/v/a.img", "/v/b.img"]}], **spec}
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "tank"},
                           "spec": spec})


def dataset(props=None, **spec):
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": "media"},
                           "spec": {"pool": "tank", "path": "media", "properties": props or {}, **spec}})


def observed(d=FUSE, media=None, **kw) -> ZfsObservation:
    obs = ZfsObservation(dialect=d, mount_root="/mnt", **kw)
    obs.pools.setdefault("tank", PoolInfo("tank", "ONLINE", [VdevInfo("mirror", ["/v/a.img", "/v/b.img"])]))
    obs.datasets.setdefault("tank", {"mountpoint": ("/mnt/tank", "local"), "used": ("100", "-"),
                                     "available": ("900", "-"), "nasd.io:managed": ("true", "local")})
    if media is not None:
        obs.datasets["tank/media"] = media
    if "mounted" not in kw:  # as the kernel's mount table says, unless the test says otherwise
        obs.mounted = {n for n, p in obs.datasets.items() if p.get("mountpoint", ("", ""))[0].startswith("/")}
    return obs


def managed(**props: str) -> dict:
    base = {"nasd.io:managed": ("true", "local"), "mountpoint": ("/mnt/tank/media", "inherited from tank")}
    base.update({k: (v, "local") for k, v in props.items()})
    return base


def argvs(plan) -> list[list[str]]:
    return [a.argv for a in plan.actions if a.argv is not None]  # (checks that read are functions)


def test_a_new_dataset_is_one_create_carrying_its_properties():
    plan = plan_dataset(dataset({"compression": "gzip-1", "atime": "off", "quota": "1Gi"}), pool(), observed())
    assert argvs(plan) == [["zfs", "create", "-o", "nasd.io:managed=true", "-o", "compression=gzip-1",
                            "-o", "atime=off", "-o", "quota=1073741824", "tank/media"]]
    assert plan.status["mountpoint"] == "/mnt/tank/media"


def test_a_converged_dataset_plans_nothing():
    obs = observed(media=managed(compression="gzip-1", quota="1073741824"))
    plan = plan_dataset(dataset({"compression": "gzip-1", "quota": "1Gi"}), pool(), obs)
    assert plan.actions == [] and plan.problem is None


def test_a_changed_property_is_set_one_per_command_on_zfs_fuse_and_together_on_openzfs():
    spec = dataset({"compression": "gzip-1", "atime": "off"})
    plan = plan_dataset(spec, pool(), observed(media=managed(compression="off", atime="on")))
    assert argvs(plan) == [["zfs", "set", "compression=gzip-1", "tank/media"],
                           ["zfs", "set", "atime=off", "tank/media"]]
    plan = plan_dataset(spec, pool(), observed(OPENZFS, media=managed(compression="off", atime="on")))
    assert argvs(plan) == [["zfs", "set", "compression=gzip-1", "atime=off", "tank/media"]]


def test_drift_on_a_ready_resource_is_reported_as_an_event():
    ds = dataset({"compression": "gzip-1"})
    ds.metadata.generation = 3
    ds.status.observedGeneration = 3
    set_condition(ds.status, "Ready", True, "Ready")
    plan = plan_dataset(ds, pool(), observed(media=managed(compression="lzjb")))
    assert plan.events == ["drift corrected on tank/media: compression was lzjb, set back to gzip-1"]


def test_a_create_only_property_change_is_refused_and_nothing_is_applied():
    plan = plan_dataset(dataset({"casesensitivity": "mixed", "atime": "off"}), pool(),
                        observed(media=managed(casesensitivity="sensitive", atime="on")))
    assert plan.actions == []
    assert plan.problem.reason == "CreateOnlyProperty"
    assert "casesensitivity is 'sensitive', the spec asks 'mixed'" in plan.problem.message


def test_a_dataset_nasd_did_not_create_is_left_alone_unless_adopted():
    foreign = {"nasd.io:managed": ("-", "-"), "compression": ("off", "default")}
    plan = plan_dataset(dataset({"compression": "gzip-1"}), pool(), observed(media=foreign))
    assert plan.actions == [] and plan.problem.reason == "Unmanaged"
    # inherited from a managed parent is not managed either
    plan = plan_dataset(dataset(), pool(), observed(media={"nasd.io:managed": ("true", "inherited from tank")}))
    assert plan.problem.reason == "Unmanaged"
    adopted = dataset({"compression": "gzip-1"})
    adopted.metadata.annotations["nasd.io/adopt"] = "true"
    plan = plan_dataset(adopted, pool(), observed(media=foreign))
    assert argvs(plan) == [["zfs", "set", "nasd.io:managed=true", "tank/media"],
                           ["zfs", "set", "compression=gzip-1", "tank/media"]]


def test_a_property_this_zfs_lacks_is_refused_before_anything_runs():
    plan = plan_dataset(dataset({"acltype": "posixacl", "compression": "lz4"}), pool(), observed())
    assert plan.actions == [] and plan.problem.reason == "UnsupportedProperty"
    assert "acltype" in plan.problem.message and "compression=lz4" in plan.problem.message
    assert plan_dataset(dataset({"acltype": "posix", "compression": "lz4"}), pool(), observed(OPENZFS)).actions


def test_a_dataset_waits_while_its_pool_is_not_imported():
    obs = observed()
    del obs.pools["tank"]
    with pytest.raises(TemporaryError):
        plan_dataset(dataset(), pool(), obs)


def test_missing_observation_is_a_temporary_error_naming_the_cause():
    with pytest.raises(TemporaryError, match="zfs-fuse daemon"):
        observation(Observed(errors={"zfs": observe_failure(RuntimeError("the zfs-fuse daemon is not running"))}))


def test_a_new_pool_creates_its_sparse_files_then_the_pool_with_nasd_marker():
    plan = plan_pool(pool(files={"/v/a.img": "1Gi", "/v/b.img": "1Gi"}, properties={"compression": "on"}),
                     ZfsObservation(dialect=FUSE, mount_root="/mnt"))
    assert [a.description for a in plan.actions[:2]] == [
        "create sparse file /v/a.img (1073741824 bytes)", "create sparse file /v/b.img (1073741824 bytes)"]
    assert plan.actions[2].argv == ["zpool", "create", "-m", "/mnt/tank", "-O", "nasd.io:managed=true",
                                    "-O", "compression=on", "tank", "mirror", "/v/a.img", "/v/b.img"]


def test_an_exported_pool_is_imported_not_recreated():
    obs = ZfsObservation(dialect=FUSE, importable={"tank"}, existing_files={"/v/a.img", "/v/b.img"})
    assert argvs(plan_pool(pool(), obs)) == [["zpool", "import", "-d", "/v", "tank"]]


def test_missing_devices_that_nasd_may_not_create_are_reported():
    plan = plan_pool(pool(), ZfsObservation(dialect=FUSE))
    assert plan.problem.reason == "MissingDevice" and plan.actions == []


def test_a_pool_whose_vdevs_differ_in_a_way_zfs_cannot_change_is_reported_never_recreated():
    obs = observed()
    obs.pools["tank"] = PoolInfo("tank", "ONLINE", [VdevInfo("raidz1", ["/v/a.img", "/v/b.img", "/v/c.img"])])
    plan = plan_pool(pool(), obs)
    assert plan.actions == [] and plan.problem.reason == "VdevTypeChange"
    assert "raidz1-0 (/v/a.img /v/b.img /v/c.img)" in plan.problem.message
    assert "mirror /v/a.img /v/b.img" in plan.problem.message


def test_pool_status_comes_from_the_observation():
    plan = plan_pool(pool(), observed())
    assert plan.actions == [] and plan.problem is None
    assert plan.status == {"health": "ONLINE", "size": 1000, "free": 900, "capacity": "10%",
                           "mountpoint": "/mnt/tank"}


def test_deleting_keeps_data_unless_the_spec_says_destroy():
    obs = observed(media=managed())
    assert plan_dataset_absent(dataset(), obs).actions == []
    assert argvs(plan_dataset_absent(dataset(deletionPolicy="Destroy"), obs)) == [
        ["zfs", "umount", "tank/media"], ["zfs", "destroy", "tank/media"]]  # zfs-fuse: unmount first
    assert argvs(plan_dataset_absent(dataset(deletionPolicy="Destroy"), observed(OPENZFS, media=managed()))) == [
        ["zfs", "destroy", "tank/media"]]


def test_a_destroy_that_would_take_children_or_snapshots_is_refused_unless_asked():
    obs = observed(media=managed())
    plan = plan_dataset_absent(dataset(deletionPolicy="Destroy"), obs)
    assert plan.actions[0].description == "check that dataset tank/media has no snapshots"  # read first
    obs.datasets["tank/media/child"] = managed()
    plan = plan_dataset_absent(dataset(deletionPolicy="Destroy"), obs)
    assert plan.actions == [] and plan.problem.reason == "HasChildren"
    assert "1 child datasets" in plan.problem.message
    plan = plan_dataset_absent(dataset(deletionPolicy="Destroy", destroyRecursive=True), obs)
    assert argvs(plan) == [["zfs", "destroy", "-r", "tank/media"]]


def test_the_clone_of_a_declared_restore_is_never_destroyed_even_when_its_zdataset_goes():
    obs = observed(media=managed())
    obs.restored["tank/media"] = "check"
    assert plan_dataset_absent(dataset(deletionPolicy="Destroy", destroyRecursive=True), obs).actions == []


def test_a_dataset_that_only_adopts_is_never_created():
    with pytest.raises(TemporaryError) as e:  # (retried: the restore makes it)
        plan_dataset(parse_resource({
            "apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset",
            "metadata": {"name": "media", "annotations": {"nasd.io/create": "false"}},
            "spec": {"pool": "tank", "path": "media"}}), pool(), observed())
    assert e.value.reason == "NotFound"


def test_a_destroy_blocked_by_a_clone_says_which_clone_and_runs_nothing():
    obs = observed(media=managed())
    obs.datasets["tank/restore/check"] = {**managed(), "origin": ("tank/media/sub@GMT-2026.11.26-04.00.00", "-")}
    obs.datasets["tank/media/sub"] = managed()
    for recursive in (False, True):
        plan = plan_dataset_absent(dataset(deletionPolicy="Destroy", destroyRecursive=recursive), obs)
        assert plan.actions == [] and plan.problem.reason == "BlockedByClone"
        assert "tank/restore/check" in plan.problem.message
        assert "tank/media/sub@GMT-2026.11.26-04.00.00" in plan.problem.message
    # a clone inside the subtree goes with it
    obs.datasets["tank/restore/check"]["origin"] = ("-", "-")
    obs.datasets["tank/media/sub"]["origin"] = ("tank/media@a", "-")
    plan = plan_dataset_absent(dataset(deletionPolicy="Destroy", destroyRecursive=True), obs)
    assert argvs(plan) == [["zfs", "destroy", "-r", "tank/media"]]


def test_a_pool_destroy_is_refused_while_it_holds_datasets():
    obs = observed(media=managed())
    assert plan_pool_absent(pool(), obs).actions == []  # Retain
    assert plan_pool_absent(pool(deletionPolicy="Destroy"), obs).problem.reason == "HasChildren"
    plan = plan_pool_absent(pool(deletionPolicy="Destroy", destroyRecursive=True), obs)
    assert argvs(plan) == [["zpool", "destroy", "tank"]]


def test_values_zfs_prints_under_another_name_are_not_set_again():
    spec = {"compression": "gzip-6", "acltype": "posixacl", "xattr": "dir"}
    media = managed(compression="gzip", acltype="posix", xattr="on")
    assert argvs(plan_dataset(dataset(spec), pool(), observed(OPENZFS, media=media))) == []
    media = managed(compression="gzip-1", acltype="off", xattr="on")
    assert argvs(plan_dataset(dataset({"compression": "gzip-6"}), pool(), observed(OPENZFS, media=media))) == [
        ["zfs", "set", "compression=gzip-6", "tank/media"]]


def test_a_dataset_still_declared_under_another_resource_name_is_never_destroyed():
    obs = observed(media=managed())
    obs.declared["tank/media"] = ["media-renamed"]
    assert argvs(plan_dataset_absent(dataset(deletionPolicy="Destroy"), obs)) == []


def test_two_resources_declaring_one_dataset_are_a_conflict():
    obs = observed(media=managed())
    obs.declared["tank/media"] = ["media", "other"]
    plan = plan_dataset(dataset(), pool(), obs)
    assert plan.problem.reason == "Conflict" and "other" in plan.problem.message and plan.actions == []


def test_a_pool_nasd_did_not_create_is_not_changed_unless_adopted():
    obs = observed()
    obs.datasets["tank"]["nasd.io:managed"] = ("-", "-")
    plan = plan_pool(pool(properties={"compression": "on"}), obs)
    assert plan.problem.reason == "Unmanaged" and plan.actions == []
    adopted = pool(properties={"compression": "on"})
    adopted.metadata.annotations["nasd.io/adopt"] = "true"
    obs.dialect = OPENZFS
    assert argvs(plan_pool(adopted, obs)) == [["zfs", "set", "nasd.io:managed=true", "compression=on", "tank"]]


def test_a_create_only_property_change_on_a_pool_is_refused():
    obs = observed()
    obs.datasets["tank"]["casesensitivity"] = ("sensitive", "local")
    plan = plan_pool(pool(properties={"casesensitivity": "mixed"}), obs)
    assert plan.problem.reason == "CreateOnlyProperty" and plan.actions == []


def test_a_pool_destroy_removes_only_its_own_vdev_files_and_checks_for_volumes_first():
    spec = {"deletionPolicy": "Destroy", "files": {"/v/a.img": "1Gi", "/v/b.img": "1Gi"}}
    plan = plan_pool_absent(pool(**spec), observed())
    descriptions = [a.description for a in plan.actions]
    assert descriptions[0].startswith("check that pool tank holds no volumes or snapshots")
    assert descriptions[1:] == ["destroy pool tank", "remove vdev file /v/a.img", "remove vdev file /v/b.img"]
    recursive = plan_pool_absent(pool(**spec, destroyRecursive=True), observed())
    assert recursive.actions[0].argv == ["zpool", "destroy", "tank"]
    # the spec was edited to other files since (VdevMismatch): those are not the pool's, never removed
    moved = pool(deletionPolicy="Destroy", vdevs=[{"type": "mirror", "devices": ["/v/c.img", "/v/d.img"]}],
                 files={"/v/c.img": "1Gi", "/v/d.img": "1Gi"})
    assert [a.description for a in plan_pool_absent(moved, observed()).actions if "remove" in a.description] == []


def owned(uid=2001, mode="0700"):
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": "media"},
                           "spec": {"pool": "tank", "path": "media", "owner": {"uid": uid, "mode": mode}}})


def test_a_new_datasets_folder_is_handed_to_its_owner_but_never_taken_from_another_uid():
    obs = observed(media={**managed(), "mountpoint": ("/mnt/tank/media", "inherited from tank")})
    obs.owners["/mnt/tank/media"] = (0, 0, 0o755)  # as zfs creates it
    plan = plan_dataset(owned(), pool(), obs)
    assert [a.description for a in plan.actions] == ["set the owner of /mnt/tank/media to 2001:0, mode 0700"]
    obs.owners["/mnt/tank/media"] = (2001, 0, 0o700)
    assert plan_dataset(owned(), pool(), obs).actions == []  # converged
    obs.owners["/mnt/tank/media"] = (2001, 0, 0o777)
    assert len(plan_dataset(owned(), pool(), obs).actions) == 1  # the mode is set back
    # a retained folder of an old account is not handed to a new account reusing the name
    plan = plan_dataset(owned(uid=2050), pool(), obs)
    assert plan.actions == [] and plan.problem.reason == "OwnerConflict"


def test_a_mountpoint_outside_the_pool_is_refused_before_anything_runs():
    plan = plan_dataset(dataset(mountpoint="/etc/nasd", owner={"uid": 2001, "mode": "0777"}), pool(), observed())
    assert plan.actions == [] and plan.problem.reason == "MountpointNotAllowed"
    assert "/etc/nasd" in plan.problem.message and "allowedMountpoints" in plan.problem.message
    allowed = observed(allowed_roots=["/srv/nas"])
    assert plan_dataset(dataset(mountpoint="/srv/nas/media"), pool(), allowed).problem is None
    assert plan_dataset(dataset(mountpoint="/mnt/tankfoo/media"), pool(), observed()).problem.reason == \
        "MountpointNotAllowed"  # (a sibling whose name starts the same is not below the pool)


def test_a_dataset_not_mounted_is_mounted_and_not_ready_until_it_is_and_its_folder_is_left_alone():
    obs = observed(media=managed(), mounted={"tank"})
    obs.owners["/mnt/tank/media"] = (0, 0, 0o755)  # (whatever is at the path)
    plan = plan_dataset(dataset(owner={"uid": 2001, "mode": "0700"}), pool(), obs)
    assert [a.description for a in plan.actions] == ["mount dataset tank/media at /mnt/tank/media"]
    assert plan.problem.reason == "NotMounted"
    obs.in_the_way["tank/media"] = "a symbolic link"  # a mount would follow it: nothing runs
    plan = plan_dataset(dataset(owner={"uid": 2001, "mode": "0700"}), pool(), obs)
    assert plan.actions == [] and "a symbolic link" in plan.problem.message


def test_nothing_is_set_or_destroyed_on_a_dataset_whose_rows_cannot_be_trusted():
    obs = observed(media=managed(), untrusted={"tank/media": "a property value holds a newline"})
    assert plan_dataset(dataset({"atime": "off"}), pool(), obs).problem.reason == "UnreadableProperties"
    gone = plan_dataset_absent(dataset(deletionPolicy="Destroy"), obs)
    assert gone.actions == [] and gone.problem.reason == "UnreadableProperties"
