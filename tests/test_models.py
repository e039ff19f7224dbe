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


@pytest.mark.parametrize("path", ["../etc", "a//b", "/abs", "a/b/", "a@snap", "a b", "a/./b", "a:b%u"])
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
    assert "not a valid share name" in problems(doc("NASShare", base | {"smb": {"name": "a][global"}}))[0]
    assert "\\u000a (a newline) is refused" in problems(doc("NASShare", base | {"smb": {"name": "a]\n[global"}}))[0]
    assert "not an allowed extra parameter" in problems(
        doc("NASShare", base | {"smb": {"extraParameters": {"include": "/etc/x"}}}))[0]
    assert "may not contain newlines, '['" in problems(
        doc("NASShare", base | {"smb": {"extraParameters": {"veto files": "/a/[x]"}}}))[0]
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


#: every character a value may not hold, one of each kind: C0 (tab too), DEL, C1, what str.splitlines()
#: breaks on, bidirectional controls and an unpaired surrogate
REFUSED = ["\x00", "\t", "\n", "\v", "\f", "\r", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\x80", "\x85",
           "\x9f", "\u2028", "\u2029", "\u202e", "\u2066", "\ud800"]


def _valid_user(**spec) -> dict:
    return doc("NASUser", {"directory": "local", "uid": 2001, **spec}, "alice")


#: (what, manifest with {} where the character goes, the field the error must name)
PLACES = [
    ("metadata.name", lambda c: doc("NASDirectory", {"type": "local"}, f"lo{c}cal"), "metadata.name"),
    ("a label value", lambda c: doc("NASDirectory", {"type": "local"}) | {
        "metadata": {"name": "x", "labels": {"app": f"a{c}b"}}}, "metadata.labels.app"),
    ("an annotation value", lambda c: doc("NASDirectory", {"type": "local"}) | {
        "metadata": {"name": "x", "annotations": {"note": f"free text{c}"}}}, "metadata.annotations.note"),
    ("a finalizer", lambda c: doc("NASDirectory", {"type": "local"}) | {
        "metadata": {"name": "x", "finalizers": [f"nasd.io/x{c}"]}}, "metadata.finalizers[0]"),
    ("a full name", lambda c: _valid_user(fullName=f"Alice{c}Smith"), "spec.fullName"),
    ("a secret file", lambda c: _valid_user(passwordSecretRef={"file": f"/etc/nasd/a{c}"}),
     "spec.passwordSecretRef.file"),
    ("a user property value", lambda c: doc("ZDataset", {"pool": "tank", "path": "a", "properties": {
        "com.example:note": f"x{c}y"}}), "spec.properties.com.example:note"),
    ("a share's extra parameter", lambda c: doc("NASShare", {"protocol": "smb", "dataset": "d", "smb": {
        "extraParameters": {"veto files": f"/x{c}/"}}}), "spec.smb.extraParameters.veto files"),
    ("an NFS host", lambda c: doc("NASShare", {"protocol": "nfs", "dataset": "d", "nfs": {"clients": [
        {"hosts": ["10.0.0.1", f"h{c}"]}]}}), "spec.nfs.clients[0].hosts[1]"),
    ("a vdev file's size", lambda c: doc("ZPool", {"vdevs": [{"devices": ["/a"]}], "files": {"/a": f"1Gi{c}"}}),
     "spec.files./a"),
    ("a cron schedule", lambda c: doc("ZSnapshotSchedule", {"datasets": ["d"], "schedule": {
        "cron": f"0 * * * *{c}"}}), "spec.schedule.cron"),
]


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"u{ord(c):04x}")
@pytest.mark.parametrize("where,make,field", PLACES, ids=[p[0] for p in PLACES])
def test_no_value_of_any_kind_may_hold_a_control_character_or_a_line_separator(where, make, field, char):
    if where == "an annotation value" and char in "\n\r\t":
        parse_resource(make(char))  # (Kubernetes tools keep JSON of several lines there; it reaches nothing)
        return
    msgs = problems(make(char))
    assert f"{field}: the character \\u{ord(char):04x} (" in msgs[0] and "is refused" in msgs[0]


def test_a_dict_key_with_a_refused_character_is_named_escaped_and_never_echoed_raw():
    data = doc("ZDataset", {"pool": "tank", "path": "a", "properties": {"com.example:a\u2028b": "v"}})
    with pytest.raises(ManifestError) as info:
        parse_resource(data, "m.yaml")
    (msg,) = info.value.problems
    assert msg.startswith("spec.properties.com.example:a\\u2028b: in this key: the character \\u2028")
    assert str(info.value).splitlines() == [str(info.value)]


def test_a_hostile_name_never_reaches_the_message_raw():
    with pytest.raises(ManifestError) as info:
        parse_resource(doc("NASDirectory", {"type": "local"}, "x\nERROR: forged"), "m.yaml")
    assert str(info.value).startswith("m.yaml (NASDirectory/x\\u000aERROR: forged): metadata.name:")
    assert "\n" not in str(info.value)


def test_a_full_name_with_a_line_separator_is_refused_so_the_account_stays_one_passwd_line():
    (msg,) = problems(_valid_user(fullName="Alice\u2028root::0:0::/root:/bin/sh"))
    assert msg.startswith("spec.fullName: the character \\u2028 (a line separator) is refused")
    assert parse_resource(_valid_user(fullName="Alice Smith, Room 4")).spec.fullName == "Alice Smith, Room 4"


def test_a_text_longer_than_any_field_needs_is_refused_wherever_it_is():
    data = doc("NASDirectory", {"type": "local"}) | {"metadata": {"name": "x", "annotations": {"a": "x" * 300_000}}}
    (msg,) = problems(data)
    assert msg.startswith("metadata.annotations.a: a value may be at most 262144 characters")


def _trailing_newline_checks():
    from nasd.models.identity import _dn
    from nasd.models.snapshots import _format
    from nasd.models.zfs import check_dataset_path, check_pool_name
    from nasd.models.zfs_properties import validate_properties

    return [("ldap baseDN", _dn, "dc=example,dc=org"), ("snapshot name format", _format, "GMT-%Y.%m.%d-%H.%M.%S"),
            ("pool name", check_pool_name, "tank"), ("dataset path", check_dataset_path, "media"),
            ("dataset path below", check_dataset_path, "media/tmp"),
            ("user property name", lambda v: validate_properties({v: "x"}), "com.example:owner")]


@pytest.mark.parametrize("what,check,valid", _trailing_newline_checks(), ids=[c[0] for c in _trailing_newline_checks()])
def test_validators_refuse_a_trailing_newline_on_their_own(what, check, valid):
    # the generic check refuses every newline first; no validator may rely on it (re.match with '$'
    # accepts 'x\n')
    check(valid)
    with pytest.raises(ValueError):
        check(valid + "\n")


@pytest.mark.parametrize("mountpoint", ["/mnt/%u", "/srv/%S/data", "/mnt/tank/../etc", "/mnt/./tank", "/mnt//tank",
                                        "/mnt/tank/"])
def test_a_mountpoint_is_a_plain_path_without_smb_substitutions(mountpoint):
    (msg,) = problems(doc("ZDataset", {"pool": "tank", "path": "a", "mountpoint": mountpoint}))
    assert msg.startswith("spec.mountpoint: ")
    assert ("'%'" in msg) == ("%" in mountpoint)
    parse_resource(doc("ZDataset", {"pool": "tank", "path": "a", "mountpoint": "/mnt/tank/a b+c@d"}))


@pytest.mark.parametrize("name", ["a" * 254, "a..b", "a.-b", "-a", "a-", ".", "..", "a/b", "A", "a_b"])
def test_a_resource_name_is_a_kubernetes_dns_subdomain_and_safe_as_a_file_name(name):
    (msg,) = problems(doc("NASDirectory", {"type": "local"}, name))
    assert msg.startswith("metadata.name: ") and "at most 253 characters" in msg


def test_the_longest_resource_name_is_253_characters():
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    parse_resource(doc("NASDirectory", {"type": "local"}, name))
    parse_resource(doc("NASDirectory", {"type": "local"}, "y" * 253))  # (Kubernetes sets no 63 per part)
    (msg,) = problems(doc("NASDirectory", {"type": "local"}, name + "d"))
    assert msg.startswith("metadata.name: ") and "at most 253 characters" in msg


@pytest.mark.parametrize("labels,fix", [
    ({"app": "x" * 64}, "at most 63"), ({"app": "a b"}, "at most 63"), ({"app": "-a"}, "at most 63"),
    ({"a" * 64: "x"}, "Kubernetes label"), ({"exa mple.com/app": "x"}, "Kubernetes label"),
    ({("a" * 254) + "/app": "x"}, "Kubernetes label"), ({"a/b/c": "x"}, "Kubernetes label"),
])
def test_labels_are_limited_as_kubernetes_limits_them(labels, fix):
    (msg,) = problems(doc("NASDirectory", {"type": "local"}) | {"metadata": {"name": "x", "labels": labels}})
    assert msg.startswith("metadata.labels: ") and fix in msg


def test_annotations_are_limited_as_kubernetes_limits_them():
    big = {f"k{i}": "x" * 200_000 for i in range(2)}
    (msg,) = problems(doc("NASDirectory", {"type": "local"}) | {"metadata": {"name": "x", "annotations": big}})
    assert msg.startswith("metadata.annotations: the annotations together may be at most 262144 bytes")
    (msg,) = problems(doc("NASDirectory", {"type": "local"}) | {"metadata": {"name": "x", "annotations": {"a b": ""}}})
    assert "Kubernetes annotation" in msg
    ok = parse_resource(doc("NASDirectory", {"type": "local"}) | {
        "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "nasd", "empty": ""},
                     "annotations": {"nasd.io/adopt": "true", "note": "free text: anything, even 100% {json}"}}})
    assert ok.metadata.annotations["nasd.io/adopt"] == "true"


def test_a_size_larger_than_zfs_can_count_is_refused():
    (msg,) = problems(doc("ZPool", {"vdevs": [{"devices": ["/a"]}], "files": {"/a": "17Ei"}}))
    assert msg == "spec.files./a: '17Ei' is larger than ZFS can count (at most 16Ei)"
    (msg,) = problems(doc("ZPool", {"vdevs": [{"devices": ["/a"]}], "files": {"/a": 10 ** 5000}}))
    assert "larger than ZFS can count" in msg


def test_a_binary_yaml_value_cannot_smuggle_a_newline_into_a_path():
    from nasd.manifests import parse_documents
    text = ("apiVersion: nasd.io/v1alpha1\nkind: ZDataset\nmetadata: {name: a}\n"
            "spec: {pool: tank, path: a, mountpoint: !!binary L21udC90YW5rL2EKYg==}\n")  # "/mnt/tank/a\nb"
    with pytest.raises(ManifestError) as info:
        parse_documents(text, "x.yaml")
    assert "spec.mountpoint: a binary value (YAML !!binary) is refused" in str(info.value)
