"""Who an NFS share reaches, as the model checks it: every host is one a client can be, and hosts that
together reach everyone need allowWorld, however the address space is cut up."""

from __future__ import annotations

import pytest

from nasd.models import ManifestError, parse_resource
from nasd.models.shares import covers_everyone


def nfs(*rules: list[str], allow_world: bool | None = None) -> dict:
    options: dict = {"clients": [{"hosts": hosts} for hosts in rules]}
    if allow_world is not None:
        options["allowWorld"] = allow_world
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
            "spec": {"protocol": "nfs", "dataset": "media", "nfs": options}}


def problems(data: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_resource(data, "m.yaml")
    return info.value.problems


@pytest.mark.parametrize("rules", [
    [["0.0.0.0/1", "128.0.0.0/1"]],
    [["0.0.0.0/1"], ["128.0.0.0/1"]],  # split over two rules
    [["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2"], ["192.0.0.0/2"]],
    [["::/1", "8000::/1"]],
    [["::/1"], ["8000::/1"]],
    [["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/3"]],
    [["::ffff:0:0/96"]],  # every IPv4 client, as an IPv6 socket sees it
    [["::ffff:0:0/97", "128.0.0.0/1"]],
    [["::/1"]],  # holds ::ffff:0:0/96, so every IPv4 client
    [["0.0.0.0/0"]],
    [["10.0.0.0/0"]],  # prefix 0: the address does not matter
    [["*"]],
])
def test_hosts_that_together_reach_every_address_need_allow_world(rules):
    (msg,) = problems(nfs(*rules))
    assert msg.startswith("spec.nfs: clients: exporting to everyone") and "allowWorld: true" in msg
    parse_resource(nfs(*rules, allow_world=True))


@pytest.mark.parametrize("rules", [
    [["0.0.0.0/1"]],
    [["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"]],  # 224.0.0.0/3 is missing
    [["8000::/1"], ["10.0.0.0/8"]],
    [["0.0.0.0/1", "8000::/1"]],  # half of each family is not everyone
    [["192.168.1.0/24", "*.lan.example"], ["@backup-hosts"], ["10.0.0.5"]],
])
def test_hosts_that_leave_addresses_out_need_no_allow_world(rules):
    parse_resource(nfs(*rules))
    assert covers_everyone([h for hosts in rules for h in hosts]) is None


@pytest.mark.parametrize("host", [
    "256.1.1.1",  # an octet above 255
    "10.0.0.300/8",
    "1.2.3",  # inet_aton would read it as 1.2.0.3
    "1234",  # an all-numeric name is an address to the resolver (0.0.4.210)
    "010.0.0.1",  # a leading zero is octal to inet_aton
    "10.0.0.0/33",  # longer than IPv4 allows
    "::/129",  # longer than IPv6 allows
    "1:2:3:4:5:6:7:8:9",
    "a..b.example",  # an empty label
    "host.",  # an empty last label
    "a-.example",  # a label ending in '-'
    "*.-a.example",
    "x" * 64 + ".example",  # a label longer than 63
    ".".join(["abcdefghi"] * 26),  # 259 characters: longer than 253
    "fe80::1%eth0",
    "10.0.0.0/8 ; x",
])
def test_an_impossible_host_is_refused_naming_the_rule(host):
    (msg,) = problems(nfs(["10.1.0.0/16", host]))
    assert msg.startswith("spec.nfs.clients[0].hosts[1]: ")
    assert "is not a" in msg


@pytest.mark.parametrize("host", [
    "10.0.0.5", "192.168.1.0/24", "10.0.0.5/8", "fd00::/8", "2001:db8::1", "::1", "nas.lan.example",
    "*.lan.example", "*lan.example", "@backup-hosts", "host-1", "a" * 63 + ".example", "1.2.3.4.example",
])
def test_the_hosts_people_write_are_accepted(host):
    parse_resource(nfs([host]))


def test_smb_hosts_allow_is_checked_as_strictly():
    data = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
            "spec": {"protocol": "smb", "dataset": "media", "smb": {"hostsAllow": ["999.0.0.1"]}}}
    (msg,) = problems(data)
    assert msg.startswith("spec.smb.hostsAllow[0]: '999.0.0.1' is not a valid address")
