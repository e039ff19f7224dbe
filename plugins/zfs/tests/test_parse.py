"""Parsers and dialect detection, on output captured from the real zfs-fuse and reconstructed
from the OpenZFS 2.1 sources (see data/openzfs-2.1/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasd_zfs.dialect import parse_dialect
from nasd_zfs.parse import VdevInfo, parse_zfs_get, parse_zpool_import, parse_zpool_status

DATA = Path(__file__).parent / "data"


def read(dialect: str, name: str) -> str:
    return (DATA / dialect / name).read_text()


def dialect_of(name: str):
    return parse_dialect(read(name, "zfs-usage.txt"), read(name, "zfs-get-usage.txt"), read(name, "zpool-usage.txt"))


def test_zfs_fuse_is_detected_as_the_old_dialect():
    d = dialect_of("zfs-fuse")
    assert d.name == "zfs-fuse"
    assert not d.list_parsable and not d.get_types and not d.multi_snapshot and not d.comma_destroy
    assert not d.program and not d.multi_set and not d.status_full_paths
    assert d.holds  # zfs hold / release exist
    assert "acltype" not in d.properties and "compression" in d.properties
    assert "lz4" not in d.compression and "gzip-9" in d.compression


def test_openzfs_2_1_is_detected_with_its_cheaper_commands():
    d = dialect_of("openzfs-2.1")
    assert d.name == "openzfs"
    assert d.list_parsable and d.get_types and d.multi_snapshot and d.comma_destroy and d.holds_listing
    assert d.program and d.multi_set and d.status_full_paths
    assert not d.json  # JSON listings came with 2.3
    assert {"acltype", "xattr", "compression"} <= d.properties
    assert {"lz4", "zstd", "zstd-19"} <= d.compression


def test_zfs_fuse_status_gives_each_pools_layout():
    pools = parse_zpool_status(read("zfs-fuse", "zpool-status.txt"))
    assert set(pools) == {"big", "st", "tank"}
    assert pools["tank"].state == "ONLINE"
    assert pools["tank"].vdevs == [VdevInfo("mirror", ["/tmp/p/a.img", "/tmp/p/b.img"])]
    assert pools["big"].vdevs == [VdevInfo("raidz1", [f"/tmp/p/{c}.img" for c in "cdef"])]
    assert pools["st"].vdevs == [VdevInfo("disk", ["/tmp/p/g.img"]), VdevInfo("disk", ["/tmp/p/h.img"])]


def test_openzfs_status_keeps_log_and_cache_devices_out_of_the_data_layout():
    pools = parse_zpool_status(read("openzfs-2.1", "zpool-status-P.txt"))
    big = pools["big"]
    assert big.state == "DEGRADED"
    assert big.vdevs == [VdevInfo("raidz1", ["/srv/big-0.img", "/srv/big-1.img", "/srv/big-2.img"])]
    assert big.auxiliary == {"logs": ["/srv/log.img"], "cache": ["/srv/cache.img"]}
    assert pools["tank"].vdevs == [VdevInfo("mirror", ["/var/lib/nasd/tank-0.img", "/var/lib/nasd/tank-1.img"])]


def test_no_pools_parses_to_nothing():
    assert parse_zpool_status(read("zfs-fuse", "zpool-status-none.txt")) == {}


@pytest.mark.parametrize("dialect", ["zfs-fuse", "openzfs-2.1"])
def test_zfs_get_gives_exact_values_and_sources(dialect):
    datasets, snapshots = parse_zfs_get(read(dialect, "zfs-get-Hp.txt"))
    media = datasets["tank/media"]
    assert media["quota"] == ("1073741824", "local")
    assert media["compression"] == ("gzip-1", "local")
    assert media["nasd.io:managed"] == ("true", "local")
    assert datasets["tank"]["quota"][0] == "0"  # -p prints a quota of none as 0
    assert not any("@" in name for name in datasets)


def test_zfs_fuse_lists_snapshots_with_properties_and_they_are_counted_not_kept():
    datasets, snapshots = parse_zfs_get(read("zfs-fuse", "zfs-get-Hp.txt"))
    assert snapshots == {"tank/media": 1}
    # the managed marker is inherited by children: only a local one means "nasd made this"
    assert datasets["tank/media/child"]["nasd.io:managed"] == ("true", "inherited from tank/media")


def test_importable_pools_are_listed_by_name():
    assert parse_zpool_import(read("zfs-fuse", "zpool-import-d.txt")) == ["st"]
    assert parse_zpool_import("") == []


def test_a_malformed_get_line_makes_its_dataset_untrusted_not_a_guess():
    untrusted: dict[str, str] = {}
    datasets, _ = parse_zfs_get("tank\tquota\t0\ntank/b\tquota\t0\tdefault\n", untrusted)
    assert "tank" in untrusted and "tank" not in datasets
    assert datasets["tank/b"] == {"quota": ("0", "default")}  # one bad row does not stop the others


def test_a_value_holding_a_newline_cannot_forge_rows_for_another_dataset():
    # tank/mine's user property was set to "x\tlocal\ntank/foreign\tnasd.io:managed\ttrue": zfs prints it raw
    forged = ("tank/mine\tnasd.io:note\tx\tlocal\ntank/foreign\tnasd.io:managed\ttrue\tlocal\n"
              "tank/foreign\tnasd.io:managed\t-\t-\ntank/mine\tnasd.io:managed\ttrue\tlocal\n")
    untrusted: dict[str, str] = {}
    datasets, _ = parse_zfs_get(forged, untrusted)
    assert "tank/foreign" not in datasets and "forged" in untrusted["tank/foreign"]
    assert datasets["tank/mine"]["nasd.io:managed"] == ("true", "local")


def test_values_with_tabs_and_separators_splitlines_would_break_on_are_read_whole():
    text = "tank/a\tnasd.io:note\tone\ttwo\v\x0c\u2028three\tlocal\ntank/a\tquota\t0\tdefault\n"
    untrusted: dict[str, str] = {}
    datasets, _ = parse_zfs_get(text, untrusted)
    assert not untrusted
    assert datasets["tank/a"] == {"nasd.io:note": ("one\ttwo\v\x0c\u2028three", "local"), "quota": ("0", "default")}
