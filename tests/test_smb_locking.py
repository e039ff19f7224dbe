"""Two clients on one file hold each other off, on a plain and on a Time Machine share: share modes deny,
a byte-range lock holds against the other's write and lock, and a second writer is refused.

Each client is its own TCP connection, so smbd serves it from its own process: what one holds, the
other's process must see in Samba's shared lock databases (this failed while Samba's lock folder was
not reachable by the share user's smbd processes: each took the other for dead and dropped its
records). The client is smbprotocol, an SMB2/3 implementation of its own, not Samba's."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from nasd_testing.passes import converge

smbprotocol = pytest.importorskip("smbprotocol")
from smbprotocol.connection import Connection  # noqa: E402
from smbprotocol.exceptions import SMBResponseException, SharingViolation  # noqa: E402
from smbprotocol.file_info import FileAttributes  # noqa: E402
from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,  # noqa: E402
                              ImpersonationLevel, LockFlags, Open, ShareAccess, SMB2LockElement)
from smbprotocol.session import Session  # noqa: E402
from smbprotocol.tree import TreeConnect  # noqa: E402

ALICE, BOB = "s3cret-Alice", "s3cret-Bob"
READ = FilePipePrinterAccessMask.FILE_READ_DATA
WRITE = FilePipePrinterAccessMask.FILE_WRITE_DATA
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
STATUS_LOCK_NOT_GRANTED = 0xC0000055


@contextmanager
def client(port: int, share: str, user: str, password: str) -> Iterator[TreeConnect]:
    conn = Connection(uuid.uuid4(), "127.0.0.1", port)
    conn.connect(timeout=10)
    try:
        session = Session(conn, user, password, require_encryption=False)
        session.connect()
        tree = TreeConnect(session, rf"\\127.0.0.1\{share}")
        tree.connect()
        yield tree
    finally:
        conn.disconnect(True)


def open_file(tree: TreeConnect, name: str, access: int, share_access: int) -> Open:
    handle = Open(tree, name)
    handle.create(ImpersonationLevel.Impersonation, access | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
                  FileAttributes.FILE_ATTRIBUTE_NORMAL, share_access, CreateDisposition.FILE_OPEN_IF,
                  CreateOptions.FILE_NON_DIRECTORY_FILE)
    return handle


def byte_range(offset: int, length: int, flags: int) -> SMB2LockElement:
    element = SMB2LockElement()
    element["offset"], element["length"], element["flags"] = offset, length, flags
    return element


def status_of(call) -> int | None:
    try:
        call()
    except SMBResponseException as e:
        return e.status
    return None


@pytest.mark.zfs
@pytest.mark.parametrize("kind", ["plain", "timemachine"])
async def test_two_clients_on_one_file_are_kept_apart_by_share_modes_and_byte_range_locks(
        pool_env, smb_env, make_nasd, kind):
    d = {"apiVersion": "nasd.io/v1alpha1"}
    smb = {"validUsers": ["alice", "bob"], **({"timeMachine": {"enabled": True}} if kind == "timemachine" else {})}
    smb["createMask"] = "0660"  # alice and bob work in the group staff's folder
    users = smb_env.local_users(alice=(2001, ALICE), bob=(2002, BOB))
    for user in users[1:]:
        user["spec"]["groups"] = ["staff"]
    docs = [pool_env.pool_manifest(),
            pool_env.dataset_manifest("work", owner={"uid": 2001, "gid": 3001, "mode": "2770"}),
            *users, d | {"kind": "NASGroup", "metadata": {"name": "staff"}, "spec": {"directory": "local", "gid": 3001}},
            d | {"kind": "NASShare", "metadata": {"name": "work"},
                 "spec": {"protocol": "smb", "dataset": "work", "smb": smb}}]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    nasd = await make_nasd([folder], watch=True, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "smb": smb_env.settings(), "timemachine": {"mdns": "off"}})
    await converge(nasd)
    assert nasd.reconciler.current[("NASShare", "work")].ready

    with client(smb_env.port, "work", "alice", ALICE) as a, client(smb_env.port, "work", "bob", BOB) as b:
        # alice opens for writing and lets others only read: bob cannot open to write, but can to read
        mine = open_file(a, "report.docx", READ | WRITE, ShareAccess.FILE_SHARE_READ)
        mine.write(b"alice's draft, v1", 0)
        with pytest.raises(SharingViolation):
            open_file(b, "report.docx", READ | WRITE, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE)
        reader = open_file(b, "report.docx", READ, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE)
        assert reader.read(0, 17) == b"alice's draft, v1"
        reader.close()
        mine.close()

        # both share the file; alice locks bytes 0-9: bob's write there and his lock there are refused,
        # his lock beyond it is granted, and once alice unlocks, his lock is granted too
        mine = open_file(a, "ledger.xlsx", READ | WRITE, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE)
        theirs = open_file(b, "ledger.xlsx", READ | WRITE, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE)
        exclusive = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
        mine.lock([byte_range(0, 10, exclusive)])
        assert status_of(lambda: theirs.write(b"bob was here", 0)) == STATUS_FILE_LOCK_CONFLICT
        assert status_of(lambda: theirs.lock([byte_range(5, 10, exclusive)])) == STATUS_LOCK_NOT_GRANTED
        theirs.lock([byte_range(10, 10, exclusive)])
        mine.write(b"0123456789", 0)
        mine.lock([byte_range(0, 10, LockFlags.SMB2_LOCKFLAG_UNLOCK)])
        theirs.lock([byte_range(0, 10, exclusive)])
        assert status_of(lambda: mine.write(b"alice again", 0)) == STATUS_FILE_LOCK_CONFLICT
        theirs.close()
        mine.close()

    # on the group folder, what alice made belongs to the group, as the setgid folder says (NT ACLs kept)
    folder = Path(nasd.reconciler.current[("ZDataset", "work")].status.mountpoint)
    assert {os.stat(folder / f).st_gid for f in ("report.docx", "ledger.xlsx")} == {3001}
