"""nasd's state folder failing: read-only for real (a read-only bind mount: root ignores chmod), or holding
a file cut short or broken by hand at start (resources.json, a record that no longer validates, an object
the API stored). nasd starts without a traceback, says which file and where it kept the broken copy,
converges, and never deletes anything because what it knew was lost."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from nasd.models import parse_resource
from nasd_testing.passes import converge
from nasd_testing.serve import poll, serving


def test_a_read_only_state_folder_is_reported_reconciling_goes_on_and_state_is_written_once_writable(
        pool_env, tmp_path):
    folder = tmp_path / "manifests"
    pool = pool_env.pool_name()
    state = pool_env.state_dir
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("a"))
    with serving(pool_env, tmp_path, maxBackoffSeconds=2) as start:
        server = start(folder)
        poll(lambda: server.ready("ZDataset", "a"), timeout=30, what="a Ready")
        time.sleep(0.5)  # (the follow-up pass)
        server.stop()
    (pool_env.mount_root / pool / "a" / "file").write_text("kept\n")
    old = (state / "resources.json").read_bytes()
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
        with pytest.raises(OSError):
            (state / "probe").write_text("")  # really read-only, for root too
        pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("a"),
                                 pool_env.dataset_manifest("b"))
        with serving(pool_env, tmp_path, maxBackoffSeconds=2) as start:
            server = start(folder)
            poll(lambda: server.ready("ZDataset", "b"), timeout=30, what="b Ready while the state is read-only")
            poll(lambda: "Read-only file system" in server.output(), what="the log line")
            line = next(json.loads(ln) for ln in server.output().splitlines()
                        if "Read-only file system" in ln and "resources.json" in ln)
            assert line["level"] == "error" and "mount the state directory read-write" in line["message"]
            assert server.ready("ZDataset", "a") and server.proc.poll() is None
            assert "Traceback" not in server.output()
            assert (state / "resources.json").read_bytes() == old
            assert (pool_env.mount_root / pool / "a" / "file").read_text() == "kept\n"

            subprocess.run(["mount", "-o", "remount,bind,rw", str(state)], check=True)
            writable = time.monotonic()
            poll(lambda: '"b"' in (state / "resources.json").read_text(), timeout=20, what="the state written")
            healed = time.monotonic() - writable
            assert "Traceback" not in server.output()
            print(f"\nstate read-only: {line['message']!r}; written {healed:.1f}s after it was writable")
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _invalid_json(path: Path) -> None:
    path.write_text('[{"manifest": {"kind": "ZDataset", oops\n')


def _record_no_longer_valid(path: Path) -> None:
    records = json.loads(path.read_text())
    for r in records:
        if r["manifest"]["metadata"]["name"] == "a":
            r["manifest"]["spec"]["pool"] = ""  # (no such spec validates)
    path.write_text(json.dumps(records))


BREAKS = {
    "resources.json cut in half": ("resources.json", _cut_in_half),
    "resources.json not JSON": ("resources.json", _invalid_json),
    "a record that no longer validates": ("resources.json", _record_no_longer_valid),
    "an API object cut in half": ("api/ZDataset/from-api.json", _cut_in_half),
    "an API object not JSON": ("api/ZDataset/from-api.json", _invalid_json),
    "an API object that no longer validates": ("api/ZDataset/from-api.json", lambda p: p.write_text(
        json.dumps({**json.loads(p.read_text()), "spec": {"pool": "", "path": "from-api"}}))),
}


@pytest.mark.parametrize("broken", list(BREAKS))
async def test_a_broken_state_file_at_start_is_moved_aside_named_in_the_log_and_nothing_is_deleted(
        broken, pool_env, make_nasd, caplog):
    folder = pool_env.root / "manifests"
    pool = pool_env.pool_name()
    destroy = {"deletionPolicy": "Destroy"}
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("a", **destroy))
    first = await make_nasd([folder], watch=True)
    api_ds = parse_resource(pool_env.dataset_manifest("from-api", **destroy), "test")
    first.pm.get_plugin("api-store").store.put(api_ds)
    await converge(first)
    for name in ("a", "from-api"):
        (pool_env.mount_root / pool / name / "file").write_text(f"{name} kept\n")
    await first.stop()

    relative, breaker = BREAKS[broken]
    path = pool_env.state_dir / relative
    breaker(path)
    broken_bytes = path.read_bytes()
    caplog.set_level(logging.INFO)
    nasd = await make_nasd([folder], watch=True)  # a restart on the broken state: starts
    await converge(nasd)

    # the log names the file and where its broken copy is; the copy is beside it, as it was
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and str(path) in r.getMessage()]
    assert errors, [r.getMessage() for r in caplog.records]
    copies = sorted(path.parent.glob(path.name + ".broken-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == broken_bytes
    assert str(copies[0]) in errors[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback

    # it converges; nothing desired, nor anything whose record was lost, is deleted
    assert nasd.reconciler.current[("ZDataset", "a")].ready
    for name in ("a", "from-api"):
        assert (pool_env.mount_root / pool / name / "file").read_text() == f"{name} kept\n"
    assert not [s.argv for s in nasd.runner.spawns if s.mutating and "destroy" in s.argv]
    assert json.loads((pool_env.state_dir / "resources.json").read_text())  # written whole again
    if relative.startswith("api/"):
        held = [r.getMessage() for r in caplog.records if "holding 1 deletion" in r.getMessage()]
        assert held and "apply ZDataset from-api again" in held[0]
        await nasd.stop()  # and at the next start too: the copy moved aside still holds deletions
        caplog.clear()
        nasd = await make_nasd([folder], watch=True)
        await converge(nasd)
        assert not [s.argv for s in nasd.runner.spawns if s.mutating and "destroy" in s.argv]
        assert (pool_env.mount_root / pool / "from-api" / "file").read_text() == "from-api kept\n"
        assert [r for r in caplog.records if "holding 1 deletion" in r.getMessage()]
        nasd.pm.get_plugin("api-store").store.put(api_ds)  # what the admin does: apply it again
        await converge(nasd)
        assert nasd.reconciler.current[("ZDataset", "from-api")].ready
        assert not nasd.feed.errors() and not list(path.parent.glob(path.name + ".broken-*"))
    else:
        assert nasd.reconciler.current[("ZDataset", "from-api")].ready
    print(f"\n{broken}: {errors[0].getMessage()}")
