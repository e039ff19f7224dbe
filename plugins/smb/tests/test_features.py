"""What every share gives clients by default, how a user turns a part off, and Samba's folders with the
modes Samba expects (pure functions and real folders; the conformance and locking tests in tests/ prove
the result against smbd)."""

from __future__ import annotations

import os
import stat

import pytest
from nasd.models import ManifestError

from nasd.errors import PermanentError
from nasd.models import parse_resource
from nasd_smb import pod, smbd
from nasd_smb.features import UnknownModule, merge_vfs, share_features, summary, tdb_name
from nasd_smb.settings import load_settings


def share(**smb):
    return parse_resource({"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "s"},
                           "spec": {"protocol": "smb", "dataset": "d", "smb": smb}})


def features(s, xattrs=True, nfs_shared=False, group=None):
    return share_features(s, xattrs=xattrs, nfs_shared=nfs_shared, tdb_file="/x/d.tdb", group_folder=group)


def test_a_share_gets_streams_dos_attributes_nt_acls_and_durable_handles_by_default():
    opts = features(share())
    assert opts["vfs objects"] == "streams_xattr acl_xattr"
    assert opts["store dos attributes"] == "yes"
    # durable handles come with what they need, all together
    assert {k: opts[k] for k in ("durable handles", "kernel oplocks", "kernel share modes", "posix locking")} == {
        "durable handles": "yes", "kernel oplocks": "no", "kernel share modes": "no", "posix locking": "no"}
    assert summary(opts, True) == ["namedStreams", "dosAttributes", "ntACLs", "durableHandles"]


def test_without_extended_attributes_a_database_per_dataset_keeps_them_whatever_else_is_off():
    opts = features(share(namedStreams=False, ntACLs=False), xattrs=False)
    assert opts["vfs objects"] == "xattr_tdb" and opts["xattr_tdb:file"] == "/x/d.tdb"  # (DOS attributes)
    assert "xattrsInDatabase" in summary(opts, False)
    assert tdb_name("tank/a/b") != tdb_name("tank/a_b")


def test_a_dataset_also_exported_over_nfs_keeps_posix_locks_and_has_no_durable_handles():
    opts = features(share(), nfs_shared=True)
    assert opts["durable handles"] == "no" and "posix locking" not in opts  # (Samba's default: yes)
    assert features(share(durableHandles=True), nfs_shared=True)["posix locking"] == "no"  # the user's word
    assert features(share(extraParameters={"posix locking": "yes"}))["durable handles"] == "no"


def test_settings_that_contradict_each_other_are_refused_naming_the_field():
    with pytest.raises(ManifestError, match="durableHandles: false"):
        share(durableHandles=True, extraParameters={"posix locking": "yes"})
    with pytest.raises(ManifestError, match="namedStreams"):
        share(namedStreams=False, timeMachine={"enabled": True})


def test_on_a_group_folder_new_files_keep_the_folders_group_with_nt_acls_kept():
    assert features(share(), group="staff")["force group"] == "+staff"  # members only
    assert "force group" not in features(share(ntACLs=False), group="staff")  # POSIX setgid does it then
    assert "force group" not in features(share(forceGroup="other"), group="staff")


def test_the_vfs_modules_are_stacked_in_one_order_whoever_asks_and_no_other_module_gets_in():
    assert merge_vfs("streams_xattr acl_xattr xattr_tdb", "shadow_copy2", "fruit catia") == \
        "catia fruit streams_xattr shadow_copy2 acl_xattr xattr_tdb"
    with pytest.raises(UnknownModule, match="full_audit"):
        merge_vfs("streams_xattr", "full_audit")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_samba_folders_have_samba_modes_and_older_ones_are_healed(smb_env):
    state = smb_env.root / "state"
    state.mkdir(mode=0o700)
    os.chmod(state, 0o700)
    settings = load_settings({}, state)
    (settings.run_dir / "lock").mkdir(parents=True)
    os.chmod(settings.run_dir / "lock", 0o700)  # as an older nasd made it
    smbd.prepare_dirs(settings, state)
    assert mode(settings.run_dir) == 0o755
    assert {d: mode(settings.run_dir / d) for d in smbd.DIR_MODES} == smbd.DIR_MODES
    assert smbd.DIR_MODES["lock"] == 0o755 and smbd.DIR_MODES["private"] == 0o700
    assert mode(state) == 0o701  # others may pass through nasd's state folder, not list it


def test_a_run_folder_below_a_folder_others_cannot_pass_is_reported_not_changed(smb_env):
    tmp_path = smb_env.root  # (whose folders others may pass)
    closed = tmp_path / "closed"
    closed.mkdir()
    os.chmod(closed, 0o700)
    settings = load_settings({"runDir": str(closed / "smb")}, tmp_path / "state")
    with pytest.raises(PermanentError, match=f"chmod o\\+x {closed}") as e:
        smbd.prepare_dirs(settings, tmp_path / "state")
    assert e.value.reason == "SambaDirUnreachable" and mode(closed) == 0o700


def test_a_pod_makes_samba_folders_with_the_same_modes():
    script = pod.start_script([], [], {})
    for sub, m in smbd.DIR_MODES.items():
        assert f"mkdir -p {pod.RUN_DIR / sub} && chmod {m:04o} {pod.RUN_DIR / sub}" in script
