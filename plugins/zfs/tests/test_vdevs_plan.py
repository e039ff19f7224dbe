"""Disks changed by editing spec.vdevs, planned as a pure function over what `zpool status` printed: exactly
the command that moves the pool towards the spec, held for a confirmation when it cannot be undone or lowers
redundancy, refused (nothing run) when ZFS cannot do it. The texts are zfs-fuse's, as captured here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nasd.models import parse_resource
from nasd_zfs.dialect import Dialect, parse_dialect
from nasd_zfs.health import parse_pool_health
from nasd_zfs.parse import parse_zpool_status
from nasd_zfs.plan import ZfsObservation, plan_pool
from nasd_zfs.vdevs import CONFIRM_ANNOTATION, PENDING_CONDITION, REFUSED, same_device

DATA = Path(__file__).parent / "data"
MiB = 1 << 20


def dialect(name: str) -> Dialect:
    r = lambda f: (DATA / name / f).read_text()  # noqa: E731
    return parse_dialect(r("zfs-usage.txt"), r("zfs-get-usage.txt"), r("zpool-usage.txt"))


FUSE, OPENZFS = dialect("zfs-fuse"), dialect("openzfs-2.1")

# what zfs-fuse printed (tabs as it prints them), trimmed to the pool's lines
OFFLINE = """  pool: tank
 state: DEGRADED
status: One or more devices has been taken offline by the administrator.
\tSufficient replicas exist for the pool to continue functioning in a
\tdegraded state.
action: Online the device using 'zpool online' or replace the device with
\t'zpool replace'.
 scrub: none requested
config:

\tNAME        STATE     READ WRITE CKSUM
\ttank        DEGRADED     0     0     0
\t  mirror-0  DEGRADED     0     0     0
\t    /v/a    ONLINE       0     0     0
\t    /v/b    OFFLINE      0     0     0

errors: No known data errors
"""

MISSING = """  pool: tank
 state: DEGRADED
status: One or more devices could not be opened.  Sufficient replicas exist for
\tthe pool to continue functioning in a degraded state.
action: Attach the missing device and online it using 'zpool online'.
   see: http://www.sun.com/msg/ZFS-8000-2Q
 scrub: none requested
config:

\tNAME                     STATE     READ WRITE CKSUM
\ttank                     DEGRADED     0     0     0
\t  mirror-0               DEGRADED     0     0     0
\t    /v/a                 ONLINE       0     0     0
\t    1784998559018850839  UNAVAIL      0     0     0  was /v/b

errors: No known data errors
"""

RESILVERING = """  pool: tank
 state: DEGRADED
 scrub: resilver in progress for 0h0m, 22.18% done, 0h3m to go
config:

\tNAME             STATE     READ WRITE CKSUM
\ttank             DEGRADED     0     0     0
\t  mirror-0       DEGRADED     0     0     0
\t    /v/a         ONLINE       0     0     0
\t    replacing-1  DEGRADED     0     0     0
\t      /v/b       OFFLINE      0     0     0
\t      /v/c       ONLINE       0     0     0  63.4M resilvered

errors: No known data errors
"""


def status(*tops: tuple[str, list[tuple[str, str]]] | tuple[str, str], state: str = "ONLINE",
           scan: str = "none requested") -> str:
    """A zfs-fuse `zpool status` of pool tank: ("mirror-0", [(device, state), ...]) or (disk, state)."""
    rows = [f"\ttank{' ' * 16}{state:<8}     0     0     0"]
    for name, inner in tops:
        if isinstance(inner, str):
            rows.append(f"\t  {name:<18}{inner:<8}     0     0     0")
            continue
        rows.append(f"\t  {name:<18}ONLINE       0     0     0")
        rows += [f"\t    {d:<16}{s:<8}     0     0     0" for d, s in inner]
    return (f"  pool: tank\n state: {state}\n scrub: {scan}\nconfig:\n\n\tNAME{' ' * 16}STATE     READ WRITE CKSUM\n"
            + "\n".join(rows) + "\n\nerrors: No known data errors\n")


def pool(*vdevs: dict, files: dict | None = None, confirm: str | None = None, **spec) -> object:
    meta: dict = {"name": "tank"}
    if confirm is not None:
        meta["annotations"] = {CONFIRM_ANNOTATION: confirm}
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": meta,
                           "spec": {"vdevs": list(vdevs), "files": files or {}, **spec}})


def mirror(*devices: str) -> dict:
    return {"type": "mirror", "devices": list(devices)}


def stripe(*devices: str) -> dict:
    return {"type": "stripe", "devices": list(devices)}


def observed(text: str, d: Dialect = FUSE, sizes: dict[str, int] | None = None, **kw) -> ZfsObservation:
    obs = ZfsObservation(dialect=d, mount_root="/mnt", **kw)
    obs.pools = parse_zpool_status(text)
    obs.health = parse_pool_health(text)
    obs.datasets["tank"] = {"mountpoint": ("/mnt/tank", "default"), "used": ("100", "-"), "available": ("900", "-"),
                            "nasd.io:managed": ("true", "local")}
    obs.mounted = {"tank"}
    obs.device_sizes = {d: 256 * MiB for d in ("/v/a", "/v/b", "/v/c", "/v/d", "/v/e")} | (sizes or {})
    obs.existing_files |= set(obs.device_sizes)
    return obs


def argvs(plan) -> list[list[str]]:
    return [a.argv for a in plan.actions if a.argv is not None]


def available(plan):
    return next((c for c in plan.conditions if c.type == "Available"), None)


def pending(plan):
    return next((c for c in plan.conditions if c.type == PENDING_CONDITION), None)


# -- replacing ------------------------------------------------------------------------------------------------


def test_a_device_taken_offline_is_replaced_by_the_one_the_spec_names_in_its_place():
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(OFFLINE))
    assert argvs(plan) == [["zpool", "replace", "tank", "/v/b", "/v/c"]]
    assert plan.problem.reason == "Resilvering" and "Ready once it is done" in plan.problem.message
    assert pending(plan) is None and PENDING_CONDITION in plan.removed_conditions


def test_a_new_device_from_spec_files_is_created_first_as_a_sparse_file():
    obs = observed(OFFLINE)
    obs.existing_files.discard("/v/c")
    plan = plan_pool(pool(mirror("/v/a", "/v/c"), files={"/v/c": "256Mi"}), obs)
    assert [a.description for a in plan.actions] == [
        f"create sparse file /v/c ({256 * MiB} bytes)", "replace /v/b (OFFLINE) with /v/c in mirror-0 (pool tank)"]
    assert plan.actions[1].argv == ["zpool", "replace", "tank", "/v/b", "/v/c"]


def test_a_missing_device_zfs_fuse_prints_as_a_guid_is_known_by_its_old_path():
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(MISSING))
    assert argvs(plan) == [["zpool", "replace", "tank", "/v/b", "/v/c"]]
    assert "/v/b (UNAVAIL)" in plan.actions[0].description


def test_replacing_a_healthy_device_waits_for_a_confirmation_naming_the_command():
    obs = observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])))
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), obs)
    assert argvs(plan) == [] and plan.problem is None  # (Ready: the pool serves as it is)
    condition = pending(plan)
    assert condition.ok is True and condition.reason == "WaitingForConfirmation"
    assert "`zpool replace tank /v/b /v/c`" in condition.message and "/v/b is healthy" in condition.message
    token = condition.message.split(f'{CONFIRM_ANNOTATION}: "')[1].split('"')[0]
    assert len(token) == 8
    # an old confirmation (of another change) confirms nothing; this one lets exactly this command go ahead
    assert argvs(plan_pool(pool(mirror("/v/a", "/v/c"), confirm="0badf00d"), obs)) == []
    confirmed = plan_pool(pool(mirror("/v/a", "/v/c"), confirm=token), obs)
    assert argvs(confirmed) == [["zpool", "replace", "tank", "/v/b", "/v/c"]] and pending(confirmed) is None
    other = plan_pool(pool(mirror("/v/a", "/v/d"), confirm=token), obs)
    assert argvs(other) == [] and pending(other) is not None


def test_a_device_with_errors_is_not_healthy_and_is_replaced_at_once():
    text = status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])).replace(
        "/v/b            ONLINE       0     0     0", "/v/b            ONLINE       0     0    17")
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(text))
    assert argvs(plan) == [["zpool", "replace", "tank", "/v/b", "/v/c"]]


def test_a_single_disk_named_anew_is_a_replace_held_while_it_is_healthy():
    plan = plan_pool(pool(stripe("/v/b")), observed(status(("/v/a", "ONLINE"))))
    assert argvs(plan) == [] and "`zpool replace tank /v/a /v/b`" in pending(plan).message


def test_while_a_resilver_runs_nothing_else_changes_and_the_pool_says_how_far_it_is():
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(RESILVERING))
    assert argvs(plan) == []
    assert plan.problem.reason == "Resilvering"
    assert "replacing /v/b (OFFLINE) with /v/c" in plan.problem.message
    assert "22.2% done, about 3m00s left" in plan.problem.message


def test_a_second_replace_waits_while_the_first_resilver_runs():
    text = status(("mirror-0", [("/v/a", "ONLINE"), ("/v/c", "ONLINE")]), ("mirror-1", [("/v/d", "ONLINE"),
                  ("/v/b", "OFFLINE")]), state="DEGRADED", scan="resilver in progress for 0h1m, 50.00% done, 0h1m to go")
    plan = plan_pool(pool(mirror("/v/a", "/v/c"), mirror("/v/d", "/v/e")), observed(text))
    assert argvs(plan) == [] and plan.problem.reason == "Resilvering"
    assert "Next: zpool replace tank /v/b /v/e" in plan.problem.message


def test_a_replace_that_did_not_finish_is_reported_and_nothing_runs():
    text = RESILVERING.replace("resilver in progress for 0h0m, 22.18% done, 0h3m to go",
                               "resilver completed after 0h0m with 0 errors on Wed Dec  2 17:21:09 2026")
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(text))
    assert argvs(plan) == [] and plan.problem.reason == "ReplaceIncomplete"
    assert "zpool detach tank <new device>" in plan.problem.message


def test_only_one_change_runs_a_pass_when_two_devices_failed():
    text = status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "FAULTED")]), ("mirror-1", [("/v/c", "ONLINE"),
                  ("/v/d", "OFFLINE")]), state="DEGRADED")
    plan = plan_pool(pool(mirror("/v/a", "/v/e"), mirror("/v/c", "/v/f"), files={"/v/f": "256Mi"}), observed(text))
    assert argvs(plan) == [["zpool", "replace", "tank", "/v/b", "/v/e"]]


# -- growing --------------------------------------------------------------------------------------------------


def test_a_device_added_to_a_single_disk_makes_it_a_mirror_by_attach():
    plan = plan_pool(pool(mirror("/v/a", "/v/b")), observed(status(("/v/a", "ONLINE"))))
    assert argvs(plan) == [["zpool", "attach", "tank", "/v/a", "/v/b"]] and pending(plan) is None
    assert plan.problem.reason == "Resilvering"


def test_a_device_added_to_a_mirror_makes_a_three_way_mirror_by_attach():
    plan = plan_pool(pool(mirror("/v/a", "/v/b", "/v/c")),
                     observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")]))))
    assert argvs(plan) == [["zpool", "attach", "tank", "/v/a", "/v/c"]]


def test_a_new_vdev_waits_for_a_confirmation_then_grows_the_pool():
    obs = observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])))
    spec = (mirror("/v/a", "/v/b"), mirror("/v/c", "/v/d"))
    plan = plan_pool(pool(*spec), obs)
    assert argvs(plan) == [] and plan.problem is None
    message = pending(plan).message
    assert "`zpool add tank mirror /v/c /v/d`" in message and "cannot be taken out again" in message
    assert "zfs-fuse" in message and "add -f" not in message and "-f: zpool refuses" not in message
    token = message.split(f'{CONFIRM_ANNOTATION}: "')[1].split('"')[0]
    plan = plan_pool(pool(*spec, confirm=token), obs)
    assert argvs(plan) == [["zpool", "add", "tank", "mirror", "/v/c", "/v/d"]]
    assert plan.problem is None and pending(plan) is None  # (no resilver: Ready once it ran)


def test_a_vdev_with_less_redundancy_than_the_pool_says_so_and_needs_f():
    obs = observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])))
    message = pending(plan_pool(pool(mirror("/v/a", "/v/b"), stripe("/v/c")), obs)).message
    assert "`zpool add -f tank /v/c`" in message and "if it fails, the whole pool is lost" in message


# -- lowering redundancy --------------------------------------------------------------------------------------


def test_a_mirror_side_dropped_from_the_spec_is_detached_only_after_confirmation():
    obs = observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])))
    plan = plan_pool(pool(stripe("/v/a")), obs)
    message = pending(plan).message
    assert argvs(plan) == [] and "`zpool detach tank /v/b`" in message
    assert "a single disk, without redundancy" in message
    token = message.split(f'{CONFIRM_ANNOTATION}: "')[1].split('"')[0]
    assert argvs(plan_pool(pool(stripe("/v/a"), confirm=token), obs)) == [["zpool", "detach", "tank", "/v/b"]]


def test_detaching_the_last_healthy_side_of_a_mirror_is_refused():
    obs = observed(status(("mirror-0", [("/v/a", "FAULTED"), ("/v/b", "ONLINE")]), state="DEGRADED"))
    plan = plan_pool(pool(stripe("/v/a")), obs)
    assert argvs(plan) == [] and plan.problem.reason == "DetachWouldLoseData"


def test_a_top_level_vdev_can_be_removed_only_where_zfs_can_and_only_after_confirmation():
    text = status(("/v/a", "ONLINE"), ("/v/b", "ONLINE"))
    plan = plan_pool(pool(stripe("/v/a")), observed(text))
    assert plan.problem.reason == "VdevCannotBeRemoved" and argvs(plan) == []
    assert "zfs-fuse" in plan.problem.message and plan.problem.message.endswith("Nothing was run")
    held = plan_pool(pool(stripe("/v/a")), observed(text, OPENZFS))
    assert held.problem is None and "`zpool remove tank /v/b`" in pending(held).message
    token = pending(held).message.split(f'{CONFIRM_ANNOTATION}: "')[1].split('"')[0]
    removed = plan_pool(pool(stripe("/v/a"), confirm=token), observed(text, OPENZFS))
    assert argvs(removed) == [["zpool", "remove", "tank", "/v/b"]] and removed.problem.reason == "Removing"
    assert available(removed) is not None and available(removed).reason == "Removing"  # (it serves meanwhile)


# what OpenZFS 2.1 prints while a removed vdev's data is copied away (the vdev is listed until it is done)
EVACUATING = """  pool: tank
 state: ONLINE
  scan: none requested
remove: Evacuation of /v/b in progress since Wed Dec  2 20:30:01 2026
	12.1M copied out of 24.5M at 6.05M/s, 49.39% done, 0h0m to go
config:

	NAME        STATE     READ WRITE CKSUM
	tank        ONLINE       0     0     0
	  /v/a      ONLINE       0     0     0
	  /v/b      ONLINE       0     0     0

errors: No known data errors
"""


def test_while_a_removed_vdevs_data_is_copied_away_nothing_runs_and_the_pool_serves():
    plan = plan_pool(pool(stripe("/v/a"), confirm="anything"), observed(EVACUATING, OPENZFS))
    assert argvs(plan) == [] and plan.problem.reason == "Removing"
    assert "Evacuation of /v/b in progress" in plan.problem.message and "49.39% done" in plan.problem.message
    assert available(plan).ok is True and available(plan).reason == "Removing"


def test_a_replace_whose_resilver_just_ended_waits_for_zfs_to_detach_the_old_device_as_resilvering():
    just = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(time.time() - 5))
    text = RESILVERING.replace("resilver in progress for 0h0m, 22.18% done, 0h3m to go",
                               f"resilver completed after 0h0m with 0 errors on {just}")
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), observed(text))
    assert argvs(plan) == [] and plan.problem.reason == "Resilvering"
    assert "ZFS detaches the old device next" in plan.problem.message and available(plan) is not None


# -- what ZFS cannot do ---------------------------------------------------------------------------------------

RAIDZ = status(("raidz1-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE"), ("/v/c", "ONLINE")]))


@pytest.mark.parametrize("spec, reason, says", [
    ({"type": "raidz1", "devices": ["/v/a", "/v/b"]}, "RaidzCannotShrink", "cannot remove a device from a raidz"),
    ({"type": "raidz1", "devices": ["/v/a", "/v/b", "/v/c", "/v/d"]}, "RaidzCannotGrow", "cannot widen a raidz"),
    ({"type": "raidz2", "devices": ["/v/a", "/v/b", "/v/c"]}, "VdevTypeChange", "cannot change a vdev's type"),
    ({"type": "mirror", "devices": ["/v/a", "/v/b", "/v/c"]}, "VdevTypeChange", "cannot change a vdev's type"),
])
def test_what_zfs_cannot_do_to_a_raidz_is_refused_and_nothing_runs(spec, reason, says):
    plan = plan_pool(pool(spec, properties={"compression": "on"}), observed(RAIDZ))
    assert plan.actions == [] and plan.problem.reason == reason and reason in REFUSED
    assert says in plan.problem.message and "Nothing was run" in plan.problem.message


def test_a_smaller_device_is_refused_as_a_replacement():
    obs = observed(OFFLINE, sizes={"/v/c": 100 * MiB})
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), obs)
    assert plan.actions == [] and plan.problem.reason == "DeviceTooSmall"
    assert "/v/c (100Mi) is smaller than the devices of mirror-0" in plan.problem.message


def test_a_new_device_that_holds_data_is_refused_unless_the_spec_allows_overwriting():
    obs = observed(OFFLINE, device_data={"/v/c": "a ext4 signature"})
    assert plan_pool(pool(mirror("/v/a", "/v/c")), obs).problem.reason == "DeviceHoldsData"
    assert argvs(plan_pool(pool(mirror("/v/a", "/v/c"), overwriteDevices=True), obs)) == [
        ["zpool", "replace", "tank", "/v/b", "/v/c"]]


def test_a_new_device_that_is_not_there_is_refused():
    obs = observed(OFFLINE)
    plan = plan_pool(pool(mirror("/v/a", "/v/x")), obs)
    assert plan.problem.reason == "MissingDevice" and "spec.files" in plan.problem.message


def test_vdevs_cannot_be_merged_or_split():
    two = observed(status(("/v/a", "ONLINE"), ("/v/b", "ONLINE")))
    assert plan_pool(pool(mirror("/v/a", "/v/b")), two).problem.reason == "VdevsCannotMerge"
    one = observed(status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")])))
    assert plan_pool(pool(stripe("/v/a", "/v/b")), one).problem.reason == "VdevCannotSplit"


def test_a_pool_nasd_did_not_create_keeps_its_vdevs_unless_adopted():
    obs = observed(OFFLINE)
    obs.datasets["tank"].pop("nasd.io:managed")
    plan = plan_pool(pool(mirror("/v/a", "/v/c")), obs)
    assert plan.actions == [] and plan.problem.reason == "Unmanaged"


def test_a_pool_as_the_spec_says_plans_nothing():
    plan = plan_pool(pool(mirror("/v/a", "/v/b")), observed(status(("mirror-0", [("/v/a", "ONLINE"),
                                                                                  ("/v/b", "ONLINE")]))))
    assert plan.actions == [] and plan.problem is None and pending(plan) is None


def test_openzfs_prints_a_whole_disk_by_its_first_partition():
    assert same_device("/dev/sdb", "/dev/sdb1") and same_device("/dev/nvme0n1", "/dev/nvme0n1p1")
    assert same_device("/dev/disk/by-id/ata-X", "/dev/disk/by-id/ata-X-part1")
    assert not same_device("/dev/sdb", "/dev/sdb2") and not same_device("/v/a", "/v/a1")


def test_a_resilver_zfs_started_by_itself_keeps_the_pool_not_ready_until_it_is_done():
    text = status(("mirror-0", [("/v/a", "ONLINE"), ("/v/b", "ONLINE")]),
                  scan="resilver in progress for 0h0m, 40.00% done, 0h0m to go")  # (after `zpool online`)
    plan = plan_pool(pool(mirror("/v/a", "/v/b")), observed(text))
    assert plan.actions == [] and plan.problem.reason == "Resilvering"
    assert plan.problem.message.startswith("pool tank: resilvering, 40.0% done, less than a minute left")


def test_an_openzfs_replace_in_progress_is_waited_for():
    text = (DATA / "openzfs-2.1" / "zpool-status-Pv-scans.txt").read_text()
    obs = ZfsObservation(dialect=OPENZFS, mount_root="/mnt", pools=parse_zpool_status(text),
                         health=parse_pool_health(text), existing_files={"/srv/fix-0.img", "/srv/fix-new.img"})
    obs.datasets["fix"] = {"mountpoint": ("/mnt/fix", "default"), "nasd.io:managed": ("true", "local")}
    fix = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "fix"},
                          "spec": {"vdevs": [mirror("/srv/fix-0.img", "/srv/fix-new.img")]}})
    plan = plan_pool(fix, obs)
    assert plan.actions == [] and plan.problem.reason == "Resilvering"
    assert "replacing /srv/fix-1.img (OFFLINE) with /srv/fix-new.img (ONLINE), resilvering, 10.0% done" \
        in plan.problem.message
