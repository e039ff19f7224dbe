"""The snapshot commands the ZFS plugin runs for the snapshots plugin, per dialect (pure: no ZFS needed).
The same commands run against zfs-fuse in plugins/snapshots/tests and against OpenZFS in the VM tier."""

from __future__ import annotations

from test_plan import FUSE, OPENZFS

from nasd.snapshot_listing import SnapshotInfo, SnapshotListing
from nasd_zfs.snapshots import DESTROY_BATCH, destroy_commands, parse_snapshot_get, snapshot_commands

TREE = ["tank/media", "tank/media/a", "tank/media/b"]


def listing(snaps: dict[str, list[str]], roots=("tank/media",)) -> SnapshotListing:
    return SnapshotListing(roots=list(roots), filesystems=TREE,
                           snapshots=[SnapshotInfo(dataset=d, name=n, created=0) for d, ns in snaps.items() for n in ns])


def test_the_dialects_detected_from_the_real_usage_texts_differ_where_snapshots_need_it():
    assert (OPENZFS.multi_snapshot, OPENZFS.comma_destroy, OPENZFS.holds) == (True, True, True)
    assert (FUSE.multi_snapshot, FUSE.comma_destroy, FUSE.holds) == (False, False, True)


def test_several_datasets_are_one_atomic_snapshot_on_openzfs_and_one_each_on_zfs_fuse():
    props = {"nasd.io:schedule": "s"}
    assert snapshot_commands(OPENZFS, TREE, "n", False, props) == [
        ["zfs", "snapshot", "-o", "nasd.io:schedule=s", "tank/media@n", "tank/media/a@n", "tank/media/b@n"]]
    assert snapshot_commands(FUSE, TREE, "n", False, props) == [
        ["zfs", "snapshot", "-o", "nasd.io:schedule=s", f"{d}@n"] for d in TREE]
    assert snapshot_commands(FUSE, ["tank/media"], "n", True, {}) == [["zfs", "snapshot", "-r", "tank/media@n"]]


def test_openzfs_prunes_with_one_comma_list_per_dataset_in_batches():
    names = [f"s{i}" for i in range(DESTROY_BATCH + 50)]
    doomed = [f"tank/media@{n}" for n in names] + ["tank/media/a@s1"]
    commands = destroy_commands(OPENZFS, doomed, listing({"tank/media": names, "tank/media/a": ["s1"]}))
    assert commands == [
        ["zfs", "destroy", "tank/media@" + ",".join(names[:DESTROY_BATCH])],
        ["zfs", "destroy", "tank/media@" + ",".join(names[DESTROY_BATCH:])],
        ["zfs", "destroy", "tank/media/a@s1"],
    ]


def test_zfs_fuse_prunes_a_name_from_a_whole_subtree_with_one_recursive_destroy():
    snaps = {d: ["old", "new"] for d in TREE}
    assert destroy_commands(FUSE, [f"{d}@old" for d in TREE], listing(snaps)) == [
        ["zfs", "destroy", "-r", "tank/media@old"]]


def test_zfs_fuse_never_uses_r_where_it_would_take_a_snapshot_not_asked_for():
    snaps = {d: ["old"] for d in TREE}
    doomed = ["tank/media@old", "tank/media/a@old"]  # tank/media/b@old stays (held, excluded, by hand...)
    assert destroy_commands(FUSE, doomed, listing(snaps)) == [
        ["zfs", "destroy", "tank/media@old"], ["zfs", "destroy", "tank/media/a@old"]]
    # nor below a dataset the listing did not cover recursively
    uncovered = listing(snaps, roots=("tank/media/a",))
    assert destroy_commands(FUSE, [f"{d}@old" for d in TREE], uncovered)[0] == ["zfs", "destroy", "tank/media@old"]


def test_a_snapshot_listing_is_parsed_with_times_holds_and_only_the_asked_user_properties():
    text = ("tank/media\tcreation\t1795000000\t-\n"
            "tank/media@a\tcreation\t1795000001\t-\ntank/media@a\tuserrefs\t1\t-\n"
            "tank/media@a\tnasd.io:schedule\ts\tlocal\n"
            "tank/media@b\tcreation\t1795000002\t-\ntank/media@b\tuserrefs\t0\t-\n"
            "tank/media@b\tnasd.io:schedule\t-\t-\n"
            "tank/media@c\tcreation\t1795000003\t-\ntank/media@c\tuserrefs\t0\t-\n"
            "tank/media@c\tnasd.io:schedule\ts\tinherited from tank/media\n")
    snaps, filesystems = parse_snapshot_get(text, ["nasd.io:schedule"])
    assert filesystems == ["tank/media"]
    assert [(s.full_name, s.created, s.userrefs, s.properties) for s in snaps] == [
        ("tank/media@a", 1795000001, 1, {"nasd.io:schedule": "s"}), ("tank/media@b", 1795000002, 0, {}),
        ("tank/media@c", 1795000003, 0, {})]  # inherited from the dataset: not the schedule's own
