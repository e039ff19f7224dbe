"""smb.conf rendering is a pure function, and nothing a manifest says can break out of its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nasd.models import ManifestError, parse_resource
from nasd_smb.render import ShareConfig, UnsafeValue, check_pair, render, share_config
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


def test_a_backslash_which_would_continue_a_line_in_smb_conf_is_refused():
    with pytest.raises(UnsafeValue):
        render(SETTINGS, [], [ShareConfig("media", "/a\\", {"path": "/a\\", "read only": "no"})])


def test_each_section_is_read_back_as_the_share_resource_that_wrote_it():
    from nasd_smb.render import parse_shares

    a = share_config(share(name="data"), "/mnt/tank/a")
    b = ShareConfig("other", "/mnt/tank/b", {"path": "/mnt/tank/b", "read only": "yes"}, resource="b")
    served = parse_shares(render(SETTINGS, [], [a, b]))
    assert served == {"media": a, "b": b}
    assert parse_shares("[global]\n\tpath = /x\n[untagged]\n\tpath = /y\n") == {}


def test_removing_a_user_never_touches_a_samba_or_unix_account_nasd_did_not_create():
    from nasd_smb.identity import IdentityObservation, plan_user_absent

    bob = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASUser", "metadata": {"name": "bob"},
                          "spec": {"directory": "local", "uid": 2002}})
    obs = IdentityObservation(users={"bob": (2002, 2002, "")}, passdb={"bob": "[U          ]"})
    assert plan_user_absent(bob, obs, SETTINGS, Path("/x/smb.conf")).actions == []
    obs.registry["users"] = ["bob"]
    argvs = [a.argv for a in plan_user_absent(bob, obs, SETTINGS, Path("/x/smb.conf")).actions if a.argv]
    assert [argv[0] for argv in argvs] == ["pdbedit", "userdel"]


def test_a_nasgroup_nasd_did_not_create_gives_no_membership():
    from nasd_smb.identity import IdentityObservation, supplementary_groups

    alice = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASUser", "metadata": {"name": "alice"},
                            "spec": {"directory": "local", "uid": 2001}})
    wheel = parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASGroup", "metadata": {"name": "wheel"},
                            "spec": {"directory": "local", "gid": 3010, "members": ["alice"]}})
    obs = IdentityObservation(desired_groups={"wheel": wheel})
    assert supplementary_groups(alice, obs) == []
    obs.registry["groups"] = ["wheel"]
    assert supplementary_groups(alice, obs) == ["wheel"]


def test_global_settings_and_directory_values_that_would_break_smb_conf_are_refused_up_front():
    from nasd.errors import PermanentError

    for bad in ({"serverString": "nasd "}, {"workgroup": "WORK\nGROUP"}, {"serverString": "50%"}):
        with pytest.raises(PermanentError):
            load_settings(bad, Path("/var/lib/nasd"))
    for dn in ("dc=x%", "dc=x ", "dc=x\\", "dc=x]"):
        with pytest.raises(ManifestError) as info:
            parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASDirectory", "metadata": {"name": "l"},
                            "spec": {"type": "ldap", "ldap": {"uri": "ldap://h", "baseDN": dn}}})
        assert info.value.problems[0].startswith("spec.ldap.baseDN")


def test_a_password_file_others_can_read_or_own_is_refused(tmp_path):
    from nasd_smb.identity import read_secret

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    assert read_secret(str(secret)) == "s3cret"
    secret.chmod(0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        read_secret(str(secret))
    secret.chmod(0o600)
    os.chown(secret, 4321, -1)
    with pytest.raises(PermissionError, match="chown"):
        read_secret(str(secret))


def test_the_only_substitution_a_path_may_carry_is_the_login_name_as_its_last_folder():
    check_pair("path", "/mnt/tank/backups/%u")  # the authenticated user, not the name the client asked for
    for bad in ("/mnt/%u/x", "/mnt/tank/%U", "/mnt/../%u", "/mnt/tank/%S", "mnt/%u", "//%u", "/%u"):
        with pytest.raises(UnsafeValue):
            check_pair("path", bad)
