"""smb.conf rendering is a pure function, and nothing a manifest says can break out of its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasd.models import ManifestError, parse_resource
from nasd_smb.render import ShareConfig, UnsafeValue, render, share_config
from nasd_smb.settings import load_settings

SETTINGS = load_settings({"port": 4455, "interfaces": ["lo"]}, Path("/var/lib/nasd"))


def share(**smb):
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
                           "spec": {"protocol": "smb", "dataset": "media", "smb": smb}})


def test_the_documented_share_renders_to_its_section():
    text = render(SETTINGS, [], [share_config(share(readOnly=False, browseable=True, validUsers=["alice"],
                                                    validGroups=["staff"]), "/mnt/tank/media")])
    section = text.split("[media]\n", 1)[1]
    assert section.splitlines() == [
        "\tpath = /mnt/tank/media", "\tread only = no", "\tbrowseable = yes", "\tguest ok = no",
        "\tvalid users = alice @staff",
    ]
    assert "\tsmb ports = 4455" in text and "\tinterfaces = lo" in text and "\tmap to guest = Never" in text
    assert "include" not in text


def test_rendering_is_deterministic_and_sorted_by_share_name():
    a = share_config(share(name="Zeta"), "/z")
    b = share_config(share(name="alpha"), "/a")
    assert render(SETTINGS, [], [a, b]) == render(SETTINGS, [], [b, a])
    assert render(SETTINGS, [], [a, b]).index("[alpha]") < render(SETTINGS, [], [a, b]).index("[Zeta]")


@pytest.mark.parametrize("smb,field", [
    ({"name": "media]\n[global"}, "spec.smb.name"),
    ({"name": "a;b"}, "spec.smb.name"),
    ({"name": "%U"}, "spec.smb.name"),
    ({"validUsers": ["alice\nbob"]}, "spec.smb.validUsers[0]"),
    ({"validUsers": ["@staff"]}, "spec.smb.validUsers[0]"),
    ({"hostsAllow": ["10.0.0.0/8 # x"]}, "spec.smb.hostsAllow[0]"),
    ({"createMask": "0644; x"}, "spec.smb.createMask"),
    ({"extraParameters": {"include": "/etc/passwd"}}, "spec.smb.extraParameters"),
    ({"extraParameters": {"root preexec": "rm -rf /"}}, "spec.smb.extraParameters"),
    ({"extraParameters": {"veto files": "/a/\n[global]"}}, "spec.smb.extraParameters"),
    ({"extraParameters": {"veto files": "/%U/"}}, "spec.smb.extraParameters"),
    ({"extraParameters": {"hide files": "; comment"}}, "spec.smb.extraParameters"),
    ({"forceUser": "root"}, None),
    ({"readOnly": "maybe"}, "spec.smb.readOnly"),
    ({"vfsObjects": "fruit"}, "spec.smb.vfsObjects"),
])
def test_hostile_share_values_are_refused_naming_the_field(smb, field):
    if field is None:  # a valid name: force user must still be a declared NASUser (a dependency)
        assert ("NASUser", "root", "UserNotReady") in share(**smb).dependencies()
        return
    with pytest.raises(ManifestError) as info:
        share(**smb)
    assert any(p.startswith(field) for p in info.value.problems), info.value.problems


def test_the_renderer_refuses_unsafe_values_even_if_a_model_let_them_through():
    for options in ({"path": "/a\n[global]"}, {"path": "/share/%U"}, {"comment": "; x"},
                    {"root preexec": "/bin/sh"}, {"include": "/etc/x"}, {"bad key!": "x"}):
        with pytest.raises(UnsafeValue):
            render(SETTINGS, [], [ShareConfig("media", "/a", options)])
    with pytest.raises(UnsafeValue):
        render(SETTINGS, [], [ShareConfig("global", "/a", {"path": "/a"})])
    with pytest.raises(UnsafeValue):
        render(SETTINGS, [], [ShareConfig("a", "/a", {"path": "/a"}), ShareConfig("A", "/b", {"path": "/b"})])


def test_a_path_with_a_percent_sign_is_refused():
    with pytest.raises(UnsafeValue):
        render(SETTINGS, [], [share_config(share(), "/mnt/tank/100%")])
