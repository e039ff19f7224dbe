"""Desired-state sources: the manifest folder, and structured logs of what happens."""

from __future__ import annotations

import json
import logging
import os

import pytest
import yaml

from nasd.feed import DesiredFeed
from nasd.logs import JSONFormatter
from nasd.manifests import load_paths
from nasd.models import ManifestError
from nasd.sources.manifests import ManifestFolder
from nasd.state import StatusStore, atomic_write


def dataset(name: str, **props) -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": name},
            "spec": {"pool": "tank", "path": name, "properties": props}}


def write(path, *docs) -> None:
    path.write_text(yaml.safe_dump_all(docs))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # mtime moves even within one tick


def test_several_documents_per_file_and_several_files_per_folder_are_read(tmp_path):
    write(tmp_path / "a.yaml", dataset("one"), dataset("two"))
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.yml", dataset("three"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert sorted(r.name for r in load_paths([tmp_path])) == ["one", "three", "two"]


def test_every_problem_of_every_file_is_reported_together(tmp_path):
    write(tmp_path / "a.yaml", dataset("one", compression="lz5"), dataset("two", bogus="x"))
    (tmp_path / "b.yaml").write_text("kind: [unclosed")
    with pytest.raises(ManifestError) as info:
        load_paths([tmp_path])
    text = "\n".join(info.value.problems)
    assert "compression: 'lz5' is not allowed" in text
    assert "bogus: not an allowed property" in text
    assert "b.yaml: not valid YAML at line 1" in text


def test_the_same_resource_in_two_files_is_refused(tmp_path):
    write(tmp_path / "a.yaml", dataset("one"))
    write(tmp_path / "b.yaml", dataset("one"))
    with pytest.raises(ManifestError, match="declared in more than one file"):
        load_paths([tmp_path])


def test_a_file_that_stops_parsing_keeps_its_last_good_resources(tmp_path):
    folder = ManifestFolder([tmp_path])
    feed = DesiredFeed()
    write(tmp_path / "a.yaml", dataset("one"), dataset("two"))
    folder.scan()
    folder.publish(feed)
    (tmp_path / "a.yaml").write_text("apiVersion: nasd.io/v1alpha1\nkind: ZDataset\nmetadata: {name: one}\n  bad")
    assert folder.scan()
    folder.publish(feed)
    desired, _ = feed.snapshot()
    assert sorted(n for _, n in desired) == ["one", "two"]  # a typo must not read as a deletion
    assert feed.errors()["manifests"]
    (tmp_path / "a.yaml").unlink()  # removing the file is a deletion
    folder.scan()
    folder.publish(feed)
    assert feed.snapshot()[0] == {}


def test_an_unchanged_folder_does_not_wake_the_reconciler(tmp_path):
    wakes: list[tuple[str, bool]] = []
    feed = DesiredFeed(on_change=lambda why, settle: wakes.append((why, settle)))
    folder = ManifestFolder([tmp_path])
    write(tmp_path / "a.yaml", dataset("one"))
    folder.scan()
    folder.publish(feed)
    assert not folder.scan()
    folder.publish(feed)
    assert len(wakes) == 1
    assert wakes[0][1] is True  # a whole folder: the reconciler lets a burst of changes settle


def test_a_resource_from_two_sources_is_a_conflict():
    from nasd.models import parse_resource

    feed = DesiredFeed()
    feed.replace("manifests", [parse_resource(dataset("one"))])
    feed.put("api", parse_resource(dataset("one", atime="off")))
    _, conflicts = feed.snapshot()
    assert conflicts == {("ZDataset", "one"): ["api", "manifests"]}


def test_state_files_are_replaced_whole_and_stray_temp_files_are_cleaned(tmp_path):
    from nasd.models import parse_resource

    store = StatusStore(tmp_path)
    resource = parse_resource(dataset("one"))
    resource.metadata.generation = store.generation_for(resource)
    store.save(resource)
    store.flush()
    stray = tmp_path / ".resources.json.tmp.999"
    stray.write_text("{half")
    again = StatusStore(tmp_path)
    assert ("ZDataset", "one") in again.known() and not stray.exists()
    changed = parse_resource(dataset("one", atime="off"))
    assert again.generation_for(changed) == 2
    atomic_write(tmp_path / "x", b"data")
    assert (tmp_path / "x").read_bytes() == b"data" and oct((tmp_path / "x").stat().st_mode)[-3:] == "600"


def test_logs_are_one_json_object_per_line_with_extra_fields():
    record = logging.LogRecord("nasd.reconciler", logging.WARNING, __file__, 1, "drift on %s", ("tank/a",), None)
    record.resource = "ZDataset/a"
    data = json.loads(JSONFormatter().format(record))
    assert data["message"] == "drift on tank/a" and data["level"] == "warning"
    assert data["resource"] == "ZDataset/a" and data["time"].endswith("Z")


def test_a_missing_folder_or_a_file_that_is_not_utf8_keeps_what_was_read_and_reports_it(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "a.yaml", dataset("one"))
    source = ManifestFolder([folder])
    source.scan()
    feed = DesiredFeed()
    source.publish(feed)
    (folder / "b.yaml").write_bytes(b"kind: \xff\xfe\n")
    assert source.scan()
    assert "b.yaml" in " ".join(source.errors())
    (folder / "b.yaml").unlink()
    assert source.scan() and source.errors() == []
    folder.rename(tmp_path / "elsewhere")  # e.g. a mount that went away
    assert source.scan()
    source.publish(feed)
    assert [r.name for r in feed.snapshot()[0].values()] == ["one"]
    assert feed.errors()["manifests"] == [f"{folder}: no such file or folder"]


def test_a_file_changed_a_moment_ago_is_read_at_the_next_scan_when_settling(tmp_path):
    source = ManifestFolder([tmp_path])
    source.scan()
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(dataset("one")))  # mtime: now
    assert not source.scan(settle=5.0)
    assert source.resources() == []
    assert source.scan(settle=0.0)
    assert [r.name for r in source.resources()] == ["one"]
