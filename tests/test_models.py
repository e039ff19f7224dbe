"""Resource models: strict validation whose errors name the field and say what is allowed."""

from __future__ import annotations

import pytest

from nasd.models import KINDS, ManifestError, ZDataset, ZPool, kind_for, parse_resource
from nasd.models.quantity import parse_quantity


def doc(kind: str, spec: dict, name: str = "x") -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def problems(data: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_resource(data, "m.yaml")
    return info.value.problems


def test_every_kind_of_the_api_has_a_model():
    assert set(KINDS) == {
        "ZPool", "ZDataset", "NASShare", "NASDirectory", "NASUser", "NASGroup", "ZSnapshotSchedule",
        "ZSnapshotRestore",
    }


def test_the_documented_pool_and_dataset_manifests_are_valid():
    pool = parse_resource(doc("ZPool", {
        "vdevs": [{"type": "stripe", "devices": ["/var/lib/nasd/tank-0.img"]}],
        "files": {"/var/lib/nasd/tank-0.img": "2Gi"},
    }, "tank"))
    ds = parse_resource(doc("ZDataset", {
        "pool": "tank", "path": "media", "properties": {"compression": "gzip-1", "atime": "off", "quota": "1Gi"},
        "deletionPolicy": "Retain",
    }, "media"))
    assert isinstance(pool, ZPool) and pool.spec.files["/var/lib/nasd/tank-0.img"] == 2 << 30
    assert isinstance(ds, ZDataset) and ds.zfs_name == "tank/media"


def test_an_unquoted_yaml_off_is_read_as_the_zfs_value_off():
    ds = parse_resource(doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"atime": False}}))
    assert ds.spec.properties == {"atime": "off"}


def test_an_unknown_field_is_named():
    assert problems(doc("ZDataset", {"pool": "tank", "path": "a", "compresion": "on"})) == [
        "spec.compresion: unknown field; check its spelling against the documented fields"
    ]


def test_a_property_outside_the_allowlist_is_refused_with_the_allowed_ones():
    (msg,) = problems(doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"sharenfs": "on"}}))
    assert msg.startswith("spec.properties: sharenfs: not an allowed property")
    assert "compression" in msg and "namespace:name" in msg


def test_a_bad_property_value_names_the_property_and_the_allowed_values():
    (msg,) = problems(doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"compression": "lz5"}}))
    assert "compression: 'lz5' is not allowed" in msg and "gzip-1..gzip-9" in msg


def test_user_properties_are_allowed_but_nasd_namespace_is_reserved():
    ok = parse_resource(doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"com.example:owner": "bob"}}))
    assert ok.spec.properties == {"com.example:owner": "bob"}
    (msg,) = problems(doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"nasd.io:managed": "false"}}))
    assert "reserved for nasd" in msg


@pytest.mark.parametrize("size,fix", [("2G", "2Gi"), ("10gb", None), ("1.5", None), ("-1Mi", None)])
def test_a_wrong_size_unit_is_refused_with_the_fix(size, fix):
    (msg,) = problems(doc("ZPool", {"vdevs": [{"devices": ["/a"]}], "files": {"/a": size}}))
    assert msg.startswith("spec.files./a:")
    assert "Ki, Mi, Gi" in msg
    if fix:
        assert f"write {fix}" in msg


def test_sizes_are_binary_and_exact():
    assert parse_quantity("1Gi") == 1 << 30
    assert parse_quantity("1.5Ki") == 1536
    assert parse_quantity(4096) == 4096
    with pytest.raises(ValueError):
        parse_quantity("1.3")


@pytest.mark.parametrize("name", ["mirror", "raidz2", "c0t0", "1tank", "ta nk", "tank;rm"])
def test_invalid_pool_names_are_refused(name):
    with pytest.raises(ManifestError) as info:
        parse_resource(doc("ZDataset", {"pool": name, "path": "a"}))
    assert "spec.pool" in info.value.problems[0]


@pytest.mark.parametrize("path", ["../etc", "a//b", "/abs", "a/b/", "a@snap", "a b", "a\nb"])
def test_invalid_dataset_paths_are_refused(path):
    (msg,) = problems(doc("ZDataset", {"pool": "tank", "path": path}))
    assert msg.startswith("spec.path:") and "not a valid dataset path" in msg


def test_a_mirror_needs_two_devices_and_files_must_be_devices():
    msgs = problems(doc("ZPool", {"vdevs": [{"type": "mirror", "devices": ["/a"]}], "files": {"/b": "1Gi"}}))
    assert msgs == ["spec.vdevs[0]: a mirror vdev needs at least 2 devices, got 1"]
    msgs = problems(doc("ZPool", {"vdevs": [{"devices": ["/a"]}], "files": {"/b": "1Gi"}}))
    assert msgs == ["spec: files: /b is not a device of any vdev"]


def test_a_vdev_type_outside_the_enum_is_named():
    (msg,) = problems(doc("ZPool", {"vdevs": [{"type": "raid5", "devices": ["/a"]}]}))
    assert msg.startswith("spec.vdevs[0].type: 'raid5' is not allowed")


def test_relative_device_paths_are_refused():
    (msg,) = problems(doc("ZPool", {"vdevs": [{"devices": ["tank.img"]}]}))
    assert "must be an absolute path" in msg


def test_wrong_api_version_and_kind_say_what_is_supported():
    assert problems({"apiVersion": "v1", "kind": "ZPool"}) == [
        "apiVersion: 'v1' is not supported; use nasd.io/v1alpha1"
    ]
    assert "use one of ZPool, ZDataset" in problems({"apiVersion": "nasd.io/v1alpha1", "kind": "Pool"})[0]


def test_smb_share_values_cannot_smuggle_config():
    base = {"protocol": "smb", "dataset": "media"}
    assert "not a valid share name" in problems(doc("NASShare", base | {"smb": {"name": "a]\n[global"}}))[0]
    assert "not an allowed extra parameter" in problems(
        doc("NASShare", base | {"smb": {"extraParameters": {"include": "/etc/x"}}}))[0]
    assert "may not contain newlines" in problems(
        doc("NASShare", base | {"smb": {"extraParameters": {"veto files": "/a/\n[x]"}}}))[0]
    assert "not a host" in problems(doc("NASShare", base | {"smb": {"hostsAllow": ["10.0.0.0/8 ; x"]}}))[0]


def test_share_options_must_match_the_protocol():
    assert "options given for an smb share" in problems(doc("NASShare", {
        "protocol": "smb", "dataset": "d", "nfs": {"clients": [{"hosts": ["10.0.0.0/8"]}]}}))[0]
    assert "allowWorld" in problems(doc("NASShare", {
        "protocol": "nfs", "dataset": "d", "nfs": {"clients": [{"hosts": ["*"]}]}}))[0]


def test_the_other_kinds_accept_their_documented_shapes():
    for data in [
        doc("NASDirectory", {"type": "local"}, "local"),
        doc("NASUser", {"directory": "local", "uid": 2001, "groups": ["staff"],
                        "passwordSecretRef": {"file": "/etc/nasd/secrets/alice"}}, "alice"),
        doc("NASGroup", {"directory": "local", "gid": 3001}, "staff"),
        doc("NASShare", {"protocol": "smb", "dataset": "media",
                         "smb": {"readOnly": False, "browseable": True, "validUsers": ["alice"],
                                 "validGroups": ["staff"]}}, "media"),
        doc("NASShare", {"protocol": "smb", "dataset": "backups",
                         "smb": {"validUsers": ["alice"],
                                 "timeMachine": {"enabled": True, "maxSize": "500Gi", "perUserDatasets": False}}}),
        doc("ZSnapshotSchedule", {"datasets": ["media"], "recursive": False, "schedule": {"cron": "0 * * * *"},
                                  "format": "GMT-%Y.%m.%d-%H.%M.%S",
                                  "retention": {"keepLast": 10, "hourly": 24, "daily": 30, "weekly": 8,
                                                "monthly": 12, "yearly": 0}}, "media-hourly"),
        doc("ZSnapshotRestore", {"mode": "clone",
                                 "source": {"dataset": "media", "snapshot": "GMT-2026.11.26-04.00.00"},
                                 "target": {"path": "restore/media-check"},
                                 "share": {"protocol": "smb", "name": "media-check", "readOnly": True}}),
    ]:
        parse_resource(data)


def test_kinds_are_found_by_name_plural_or_short_name():
    assert kind_for("zpool") is ZPool and kind_for("zpools") is ZPool and kind_for("zp") is ZPool
    assert kind_for("ZDataset") is ZDataset and kind_for("zds") is ZDataset
    assert kind_for("nasdirectory").plural == "nasdirectories"
    with pytest.raises(KeyError):
        kind_for("pods")


def test_per_user_time_machine_datasets_need_valid_users_and_no_guests():
    def share(**smb):
        return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "backups"},
                "spec": {"protocol": "smb", "dataset": "backups",
                         "smb": {"timeMachine": {"enabled": True, "perUserDatasets": True}, **smb}}}
    parse_resource(share(validUsers=["alice"]))
    for bad in (share(), share(validUsers=["alice"], guestOk=True)):
        with pytest.raises(ManifestError) as e:
            parse_resource(bad)
        assert "perUserDatasets needs validUsers" in str(e.value)
