"""`zpool status` health parsing in both dialects: zfs-fuse's text captured from the real zfs-fuse 0.7 (data/zfs-fuse,
made by corrupting, offlining and scrubbing real pools), OpenZFS 2.1's worked out from its source
(data/openzfs-2.1/SOURCES.md)."""

from __future__ import annotations

import time
from pathlib import Path

from nasd_zfs.health import parse_duration, parse_pool_health, parse_scan, parse_size

DATA = Path(__file__).parent / "data"


def read(dialect: str, name: str) -> str:
    return (DATA / dialect / name).read_text()


def local(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def test_zfs_fuse_scrub_that_repaired_a_mirror_names_the_device_its_checksum_errors_and_bytes():
    pool = parse_pool_health(read("zfs-fuse", "zpool-status-repaired.txt"))["care"]
    assert pool.state == "ONLINE"
    assert pool.scan.kind == "scrub" and pool.scan.state == "finished" and pool.scan.errors == 0
    assert pool.scan.ended == local("2026-12-02 17:25:59") and pool.scan.duration == 0
    bad = pool.device("/tmp/hh/v/m0")
    assert bad is not None and (bad.cksum, bad.parent, bad.repaired) == (50483, "mirror-0", 198 << 20)
    assert pool.scan.repaired == 198 << 20  # (zfs-fuse says it only beside the device)
    assert [d.name for d in pool.leaves()] == ["/tmp/hh/v/m0", "/tmp/hh/v/m1"]
    assert "unrecoverable error" in pool.status and pool.data_errors == 0


def test_zfs_fuse_offline_device_makes_the_pool_and_its_mirror_degraded():
    pool = parse_pool_health(read("zfs-fuse", "zpool-status-offline.txt"))["care"]
    assert pool.state == "DEGRADED"
    states = {d.name: (d.state, d.depth) for d in pool.devices}
    assert states == {"care": ("DEGRADED", 0), "mirror-0": ("DEGRADED", 1), "/tmp/hh/v/m0": ("ONLINE", 2),
                      "/tmp/hh/v/m1": ("OFFLINE", 2)}


def test_zfs_fuse_scrub_in_progress_gives_percent_and_start():
    scan = parse_pool_health(read("zfs-fuse", "zpool-status-scrubbing.txt"), now=1000.0)["care"].scan
    assert (scan.kind, scan.state, scan.percent, scan.seconds_left, scan.started) == ("scrub", "running", 67.07, 0, 1000.0)
    assert scan.running and scan.ended is None


def test_zfs_fuse_never_scrubbed_stopped_and_resilvered_scans():
    never = parse_pool_health(read("zfs-fuse", "zpool-status-never.txt"))
    assert set(never) == {"care", "solo"} and never["solo"].scan.kind is None and never["solo"].scan.state == "none"
    stopped = parse_pool_health(read("zfs-fuse", "zpool-status-stopped.txt"))["care"].scan
    assert (stopped.kind, stopped.state, stopped.ended) == ("scrub", "canceled", local("2026-12-02 17:26:03"))
    resilver = parse_pool_health(read("zfs-fuse", "zpool-status-resilvered.txt"))["care"]
    assert (resilver.scan.kind, resilver.scan.state, resilver.scan.repaired) == ("resilver", "finished", 12 << 10)
    assert resilver.device("/tmp/hh/v/m1").resilvered == 12 << 10


def test_zfs_fuse_permanent_errors_counted_and_listed_with_v():
    pool = parse_pool_health(read("zfs-fuse", "zpool-status-data-errors.txt"))["solo"]
    assert pool.data_errors == 132 and pool.error_files == [] and pool.scan.errors == 132
    listed = parse_pool_health(read("zfs-fuse", "zpool-status-v-data-errors.txt"))["solo"]
    assert listed.error_files == [f"/tmp/hh/mnt-solo/f{i}" for i in range(1, 5)] and listed.data_errors == 4


def test_openzfs_degraded_raidz_keeps_log_and_cache_in_their_sections():
    pools = parse_pool_health(read("openzfs-2.1", "zpool-status-P.txt"))
    big = pools["big"]
    assert big.state == "DEGRADED" and big.scan.kind is None
    gone = big.device("/srv/big-1.img")
    assert gone is not None and (gone.state, gone.note, gone.parent) == ("UNAVAIL", "cannot open", "raidz1-0")
    assert [d.name for d in big.leaves()] == ["/srv/big-0.img", "/srv/big-1.img", "/srv/big-2.img"]
    assert [d.name for d in big.leaves("logs")] == ["/srv/log.img"]
    assert [d.name for d in big.leaves("cache")] == ["/srv/cache.img"]
    tank = pools["tank"].scan
    assert (tank.kind, tank.state, tank.repaired, tank.duration, tank.errors) == ("scrub", "finished", 0, 1, 0)
    assert tank.ended == local("2026-11-26 04:00:00")


def test_openzfs_scrub_and_resilver_in_progress_and_permanent_errors():
    pools = parse_pool_health(read("openzfs-2.1", "zpool-status-Pv-scans.txt"))
    busy = pools["busy"]
    assert (busy.scan.kind, busy.scan.state, busy.scan.percent, busy.scan.seconds_left, busy.scan.repaired) == \
        ("scrub", "running", 30.0, 23, 16 << 10)
    assert busy.scan.started == local("2026-11-26 04:00:00")
    assert busy.device("/srv/busy-1.img").note == "(repairing)"
    fix = pools["fix"]
    assert (fix.scan.kind, fix.scan.state, fix.scan.percent, fix.scan.seconds_left) == ("resilver", "running", 10.0, None)
    new = fix.device("/srv/fix-new.img")
    assert new is not None and new.resilvering and new.parent == "replacing-1" and new.depth == 3
    assert fix.device("/srv/fix-1.img").state == "OFFLINE"
    assert "being resilvered" in fix.status
    lost = pools["lost"]
    assert lost.scan.errors == 3 and lost.scan.duration == 86400 + 2 * 3600 + 3 * 60 + 4
    assert lost.device("/srv/lost.img").cksum == 1228
    assert lost.error_files == ["/lost/media/film.mkv", "lost/media@daily:/old.txt", "<metadata>:<0x3f>"]
    assert lost.data_errors == 3


def test_openzfs_2_2_scan_lines_paused_and_canceled():
    running = parse_scan("scrub in progress since Thu Nov 26 04:00:00 2026\n\t1.5G / 4G scanned at 150M/s, "
                         "1.2G / 4G issued at 120M/s\n\t0B repaired, 30.00% done, 1 days 00:00:05 to go")
    assert (running.state, running.percent, running.seconds_left) == ("running", 30.0, 86405)
    paused = parse_scan("scrub paused since Thu Nov 26 05:00:00 2026\n\tscrub started on Thu Nov 26 04:00:00 2026\n"
                        "\t1.5G / 4G scanned, 1.2G / 4G issued\n\t0B repaired, 30.00% done")
    assert paused.state == "paused" and paused.running and paused.started == local("2026-11-26 04:00:00")
    canceled = parse_scan("scrub canceled on Thu Nov 26 05:00:00 2026")
    assert (canceled.kind, canceled.state, canceled.running) == ("scrub", "canceled", False)
    rebuilt = parse_scan("resilvered (mirror-0) 1.00G in 00:00:05 with 0 errors on Thu Nov 26 05:00:00 2026")
    assert (rebuilt.kind, rebuilt.state, rebuilt.repaired) == ("resilver", "finished", 1 << 30)


def test_odd_text_never_raises_and_is_not_guessed():
    assert parse_pool_health("") == {}
    assert parse_pool_health("garbage\n\tNAME STATE\n  pool: x\n\tx ONLINE 0 0 zz\n errors: what")["x"].devices == []
    odd = parse_scan("scrub did something new")
    assert odd.kind is None and odd.line == "scrub did something new"
    assert parse_size("1.5K") == 1536 and parse_size("-") is None
    assert parse_duration("0h7m") == 420 and parse_duration("soon") is None
