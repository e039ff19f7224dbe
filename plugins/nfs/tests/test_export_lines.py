"""The exports line as a pure function: what each manifest field becomes, and that nothing hostile
can reach the file, through the model or past it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nasd.models import NASShare
from nasd_nfs.foreign import export_paths
from nasd_nfs.render import UnsafeValue, check_options, escape_path, export_for, line_share, mount_command, parse, render


def share(name="media", **nfs):
    nfs.setdefault("clients", [{"hosts": ["192.168.1.0/24"]}])
    return NASShare.model_validate({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
                                    "spec": {"protocol": "nfs", "dataset": "media", "nfs": nfs}})


def test_each_rule_becomes_its_hosts_with_the_options_the_manifest_gives():
    s = share(fsid=7, clients=[
        {"hosts": ["192.168.1.0/24", "*.lan.example"], "access": "rw", "squash": "none"},
        {"hosts": ["@backup-hosts"], "squash": "all", "anonuid": 3000, "anongid": 3000, "sync": False,
         "security": ["krb5p", "krb5i"]},
    ])
    assert export_for(s, "/tank/media").line() == (
        "/tank/media 192.168.1.0/24(rw,sync,no_subtree_check,crossmnt,no_root_squash,sec=sys,fsid=7) "
        "*.lan.example(rw,sync,no_subtree_check,crossmnt,no_root_squash,sec=sys,fsid=7) "
        "@backup-hosts(ro,async,no_subtree_check,crossmnt,all_squash,anonuid=3000,anongid=3000,sec=krb5p:krb5i,fsid=7)")


def test_the_defaults_are_read_only_sync_root_squash_and_crossing_into_child_mounts():
    assert export_for(share(), "/p").line() == "/p 192.168.1.0/24(ro,sync,no_subtree_check,crossmnt,root_squash,sec=sys)"
    assert "crossmnt" not in export_for(share(crossmnt=False), "/p").line()


def test_a_path_with_a_space_or_a_parenthesis_is_written_as_octal_escapes():
    assert escape_path("/tank/my media (old)") == "/tank/my\\040media\\040\\050old\\051"
    with pytest.raises(UnsafeValue, match="control characters"):
        escape_path("/tank/evil\n/ *(rw)")


@pytest.mark.parametrize("host", [
    "10.0.0.1 (rw)", "10.0.0.1(rw,no_root_squash)", "host\n/ *(rw)", "a,b", "h)(", " 10.0.0.1", "(rw)", "",
])
def test_a_hostile_host_is_refused_by_the_model_naming_the_field(host):
    with pytest.raises(ValidationError) as e:
        share(clients=[{"hosts": [host]}])
    assert "clients" in str(e.value) and "hosts" in str(e.value)


@pytest.mark.parametrize("field,value", [
    ("access", "rw,no_root_squash"), ("squash", "none) *(rw"), ("security", ["sys,insecure"]),
    ("anonuid", "0,insecure"), ("unknownOption", "x"),
])
def test_a_hostile_or_unknown_option_is_refused_by_the_model(field, value):
    with pytest.raises(ValidationError) as e:
        share(clients=[{"hosts": ["10.0.0.1"], field: value}])
    assert field in str(e.value)


def test_the_world_needs_allow_world_and_fsid_zero_is_refused():
    with pytest.raises(ValidationError, match="allowWorld"):
        share(clients=[{"hosts": ["*"]}])
    with pytest.raises(ValidationError, match="allowWorld"):
        share(clients=[{"hosts": ["0.0.0.0/0"]}])
    assert export_for(share(allowWorld=True, clients=[{"hosts": ["*"]}]), "/p").line().startswith("/p *(ro,")
    with pytest.raises(ValidationError, match="fsid"):
        share(fsid=0)


def test_the_renderer_checks_again_what_the_model_let_through():
    """Defence in depth: a value that bypassed validation (model_construct) still cannot reach the file."""
    s = share()
    s.spec.nfs.clients[0].hosts = ["10.0.0.1 *(rw"]  # type: ignore[union-attr]
    with pytest.raises(UnsafeValue, match=r"spec.nfs.clients\[0\].hosts"):
        export_for(s, "/p")
    with pytest.raises(UnsafeValue, match="not allowed"):
        check_options(("rw", "insecure"), "spec.nfs.clients[0]")
    with pytest.raises(UnsafeValue, match="not a valid value"):
        check_options(("anonuid=0,rw",), "spec.nfs.clients[0]")
    with pytest.raises(UnsafeValue, match="one line"):
        render({"media": "/p 10.0.0.1(ro)\n/ *(rw)"})


def test_a_host_in_two_rules_is_refused():
    with pytest.raises(UnsafeValue, match=r"clients\[1\].hosts: 10.0.0.1 is already in clients\[0\]"):
        export_for(share(clients=[{"hosts": ["10.0.0.1"]}, {"hosts": ["10.0.0.1"], "access": "rw"}]), "/p")


def test_the_file_names_each_lines_share_and_parses_back():
    text = render({"b": "/b 10.0.0.2(ro)", "a": "/a 10.0.0.1(rw)"})
    assert text.splitlines()[2:] == ["# NASShare a", "/a 10.0.0.1(rw)", "# NASShare b", "/b 10.0.0.2(ro)"]
    assert parse(text) == {"a": "/a 10.0.0.1(rw)", "b": "/b 10.0.0.2(ro)"}
    assert line_share(text, 4) == "a" and line_share(text, 6) == "b" and line_share(text, 1) is None


def test_foreign_files_are_parsed_for_their_paths():
    text = '# comment\n/srv/a 10.0.0.1(rw)\n\n"/srv/with space" *(ro)\n/srv/long \\\n   10.0.0.2(rw)\n/srv/b\\040c h(ro)\n'
    assert export_paths(text) == [(2, "/srv/a"), (4, "/srv/with space"), (5, "/srv/long"), (7, "/srv/b c")]


def test_the_mount_command_uses_v4_and_the_first_kerberos_flavour_when_sys_is_not_allowed():
    assert mount_command("nas", "/tank/media", "media", ["sys"]) == \
        "mount -t nfs -o vers=4.2 nas:/tank/media /mnt/media"
    assert mount_command("nas", "/tank/my media", "media", ["krb5p"]) == \
        "mount -t nfs -o vers=4.2,sec=krb5p 'nas:/tank/my media' /mnt/media"


@pytest.mark.parametrize("host", ["10.0.0.0/0", "::0/0", "1::/0"])
def test_any_network_of_prefix_length_zero_is_everyone_and_needs_allow_world(host):
    with pytest.raises(ValidationError, match="allowWorld"):
        share(clients=[{"hosts": [host]}])


@pytest.mark.parametrize("host", ["10.0.0.0/33", "10.0.0.256/8", "10.0.0.1\n", "@grp\n"])
def test_an_impossible_network_or_a_trailing_newline_is_refused(host):
    with pytest.raises(ValidationError):
        share(clients=[{"hosts": [host]}])
