"""The REST API (nasd.web.app) against a real Nasd and real zfs-fuse: apply, list, get, delete,
validation, ownership by the manifest folder, persistence across restarts, TCP bearer tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nasd.web.app import make_app

pytestmark = pytest.mark.zfs

API = "/apis/nasd.io/v1alpha1"
TOKEN = "a-test-token-that-is-long-enough"


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)


def api_files(state_dir: Path) -> list[Path]:
    root = state_dir / "api"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_apply_creates_pool_and_dataset_and_get_reports_them_ready(aiohttp_client, make_nasd, pool_env):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))
    pool = pool_env.pool_name()

    resp = await client.post(f"{API}/zpools", json=pool_env.pool_manifest())
    assert resp.status == 201, await resp.text()
    dataset = pool_env.dataset_manifest("media", properties={"atime": "off"})
    resp = await client.post(f"{API}/zdatasets", json=dataset)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["metadata"]["name"] == "media"

    report = await nasd.reconciler.run_pass()
    assert report.all_ready, report.outcomes

    assert pool_env.zfs_get(f"{pool}/media", "atime")["atime"] == "off"
    resp = await client.get(f"{API}/zdatasets/media")
    assert resp.status == 200
    body = await resp.json()
    assert ready_condition(body)["status"] == "True"
    expected_mountpoint = str(pool_env.mount_root / pool / "media")
    assert body["status"]["mountpoint"] == expected_mountpoint
    assert pool_env.zfs_get(f"{pool}/media", "mountpoint")["mountpoint"] == expected_mountpoint

    resp = await client.get(f"{API}/zpools/{pool}")
    assert ready_condition(await resp.json())["status"] == "True"


async def test_applying_an_unchanged_object_again_returns_200_and_runs_no_mutating_command(
    aiohttp_client, make_nasd, pool_env
):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))
    dataset = pool_env.dataset_manifest("media", properties={"atime": "off"})
    assert (await client.post(f"{API}/zpools", json=pool_env.pool_manifest())).status == 201
    assert (await client.post(f"{API}/zdatasets", json=dataset)).status == 201
    await nasd.reconciler.run_pass()
    generation = (await (await client.get(f"{API}/zdatasets/media")).json())["metadata"]["generation"]

    seen = len(nasd.runner.spawns)
    resp = await client.post(f"{API}/zdatasets", json=dataset)
    assert resp.status == 200, await resp.text()
    resp = await client.put(f"{API}/zdatasets/media", json=dataset)
    assert resp.status == 200, await resp.text()
    report = await nasd.reconciler.run_pass()

    assert report.all_ready
    assert not report.mutated
    new_spawns = nasd.runner.spawns[seen:]
    assert new_spawns, "the pass should have observed the system"
    assert [s.argv for s in new_spawns if s.mutating] == []
    assert (await (await client.get(f"{API}/zdatasets/media")).json())["metadata"]["generation"] == generation


async def test_list_returns_a_kind_list_with_every_item(aiohttp_client, make_nasd, pool_env):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))
    assert (await client.post(f"{API}/zpools", json=pool_env.pool_manifest())).status == 201
    for name in ("b-media", "a-docs"):
        assert (await client.post(f"{API}/zdatasets", json=pool_env.dataset_manifest(name))).status == 201

    resp = await client.get(f"{API}/zdatasets")
    assert resp.status == 200
    body = await resp.json()
    assert body["kind"] == "ZDatasetList"
    assert body["apiVersion"] == "nasd.io/v1alpha1"
    assert [item["metadata"]["name"] for item in body["items"]] == ["a-docs", "b-media"]
    assert {item["kind"] for item in body["items"]} == {"ZDataset"}

    body = await (await client.get(f"{API}/zpools")).json()
    assert body["kind"] == "ZPoolList"
    assert [item["metadata"]["name"] for item in body["items"]] == [pool_env.pool_name()]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_unknown_plural_is_a_404_status(aiohttp_client, make_nasd, pool_env, method):
    client = await aiohttp_client(make_app(await make_nasd()))
    resp = await client.request(method, f"{API}/zthings", json=pool_env.pool_manifest())
    assert resp.status == 404
    body = await resp.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert "zthings" in body["message"]


async def test_getting_a_missing_object_is_a_404_status(aiohttp_client, make_nasd, pool_env):
    client = await aiohttp_client(make_app(await make_nasd()))
    resp = await client.get(f"{API}/zdatasets/nothing")
    assert resp.status == 404
    assert (await resp.json())["kind"] == "Status"


async def test_an_invalid_manifest_is_a_422_naming_every_field_and_nothing_is_stored(
    aiohttp_client, make_nasd, pool_env
):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))
    bad = pool_env.dataset_manifest("bad", properties={"compression": "lz5"}, colour="red")

    resp = await client.post(f"{API}/zdatasets", json=bad)

    assert resp.status == 422
    body = await resp.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "Invalid"
    causes = [c["message"] for c in body["details"]["causes"]]
    assert len(causes) == 2, causes
    assert any(c.startswith("spec.properties") and "lz5" in c for c in causes), causes
    assert any(c.startswith("spec.colour") and "unknown field" in c for c in causes), causes
    assert (await client.get(f"{API}/zdatasets/bad")).status == 404
    assert api_files(pool_env.state_dir) == []
    assert nasd.feed.snapshot()[0] == {}


async def test_a_body_that_is_not_json_or_yaml_is_a_400(aiohttp_client, make_nasd, pool_env):
    client = await aiohttp_client(make_app(await make_nasd()))
    yaml_body = {"Content-Type": "application/yaml"}
    resp = await client.post(f"{API}/zdatasets", data="{not: [valid", headers=yaml_body)
    assert resp.status == 400
    assert (await resp.json())["reason"] == "BadRequest"


async def test_a_manifest_of_another_kind_or_name_than_the_path_is_refused(
    aiohttp_client, make_nasd, pool_env
):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))

    resp = await client.post(f"{API}/zdatasets", json=pool_env.pool_manifest())
    assert resp.status == 400
    resp = await client.put(f"{API}/zdatasets/other", json=pool_env.dataset_manifest("media"))
    assert resp.status == 400
    assert "other" in (await resp.json())["message"]
    assert nasd.feed.snapshot()[0] == {}


async def test_delete_removes_the_object_and_retain_keeps_the_dataset_in_zfs(
    aiohttp_client, make_nasd, pool_env
):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd))
    pool = pool_env.pool_name()
    assert (await client.post(f"{API}/zpools", json=pool_env.pool_manifest())).status == 201
    dataset = pool_env.dataset_manifest("media", deletionPolicy="Retain")
    assert (await client.post(f"{API}/zdatasets", json=dataset)).status == 201
    assert (await nasd.reconciler.run_pass()).all_ready

    resp = await client.delete(f"{API}/zdatasets/media")

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "Success"
    assert ("ZDataset", "media") not in nasd.feed.snapshot()[0]
    assert not (pool_env.state_dir / "api" / "ZDataset" / "media.json").exists()
    report = await nasd.reconciler.run_pass()
    assert report.deleted == [("ZDataset", "media")]
    assert (await client.get(f"{API}/zdatasets/media")).status == 404
    retained = pool_env.zfs_get(f"{pool}/media", "mountpoint")
    assert retained["mountpoint"] == str(pool_env.mount_root / pool / "media")
    # deleting it again: it is gone
    assert (await client.delete(f"{API}/zdatasets/media")).status == 404


async def test_a_resource_declared_by_the_manifest_folder_cannot_be_changed_or_deleted_through_the_api(
    aiohttp_client, make_nasd, pool_env, tmp_path
):
    folder = tmp_path / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    nasd = await make_nasd(manifests=[folder])
    client = await aiohttp_client(make_app(nasd))
    pool = pool_env.pool_name()
    changed = pool_env.pool_manifest(properties={"atime": "off"})

    post = await client.post(f"{API}/zpools", json=changed)
    put = await client.put(f"{API}/zpools/{pool}", json=changed)
    delete = await client.delete(f"{API}/zpools/{pool}")

    for resp in (post, put, delete):
        assert resp.status == 409, await resp.text()
        body = await resp.json()
        assert body["reason"] == "Conflict"
        assert "manifests" in body["message"]
    assert nasd.feed.source_of(("ZPool", pool)) == ["manifests"]
    resp = await client.get(f"{API}/zpools/{pool}")
    assert resp.status == 200
    assert (await resp.json())["spec"]["properties"] == {}
    assert api_files(pool_env.state_dir) == []


async def test_api_objects_survive_a_restart(aiohttp_client, make_nasd, pool_env):
    first = await make_nasd()
    client = await aiohttp_client(make_app(first))
    assert (await client.post(f"{API}/zpools", json=pool_env.pool_manifest())).status == 201
    assert (await client.post(f"{API}/zdatasets", json=pool_env.dataset_manifest("media"))).status == 201
    assert (await first.reconciler.run_pass()).all_ready
    await first.stop()

    second = await make_nasd()

    desired, _ = second.feed.snapshot()
    assert set(desired) == {("ZPool", pool_env.pool_name()), ("ZDataset", "media")}
    assert second.feed.source_of(("ZDataset", "media")) == ["api"]
    assert desired[("ZDataset", "media")].spec.pool == pool_env.pool_name()
    report = await second.reconciler.run_pass()
    assert report.all_ready
    assert not report.mutated, "the restarted daemon must not recreate what exists"


async def test_tcp_api_needs_the_bearer_token_except_for_healthz(aiohttp_client, make_nasd, pool_env):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd, token=TOKEN))
    path = f"{API}/zpools"

    missing = await client.get(path)
    wrong = await client.get(path, headers={"Authorization": "Bearer not-the-token"})
    not_bearer = await client.get(path, headers={"Authorization": TOKEN})
    right = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    post_without = await client.post(path, json=pool_env.pool_manifest())
    metrics_without = await client.get("/metrics")
    health = await client.get("/healthz")

    for resp in (missing, wrong, not_bearer, post_without, metrics_without):
        assert resp.status == 401
        body = await resp.json()
        assert body["kind"] == "Status"
        assert body["reason"] == "Unauthorized"
    assert right.status == 200
    assert (await right.json())["kind"] == "ZPoolList"
    assert health.status == 200
    assert nasd.feed.snapshot()[0] == {}, "an unauthorized POST must not be applied"


async def test_an_authorization_header_that_is_not_utf8_is_a_401_not_a_server_error(
    aiohttp_client, make_nasd, pool_env
):
    client = await aiohttp_client(make_app(await make_nasd(), token=TOKEN))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {API}/zpools HTTP/1.1\r\nHost: nasd\r\nConnection: close\r\n".encode()
                 + b"Authorization: Bearer \xff\xfe\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b'"reason": "Unauthorized"' in answer


async def test_metrics_are_prometheus_text_with_commands_and_resources(aiohttp_client, make_nasd, pool_env):
    nasd = await make_nasd()
    client = await aiohttp_client(make_app(nasd, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post(f"{API}/zpools", json=pool_env.pool_manifest(), headers=auth)).status == 201
    assert (await nasd.reconciler.run_pass()).all_ready

    resp = await client.get("/metrics", headers=auth)

    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE nasd_commands_total counter" in text
    assert 'nasd_commands_total{program="zpool",verb="create"} 1' in text.splitlines()
    assert "# TYPE nasd_resources gauge" in text
    assert 'nasd_resources{kind="ZPool",ready="True",reason="Ready"} 1' in text.splitlines()
    assert "nasd_reconcile_duration_seconds_count 1" in text.splitlines()


async def test_odd_bodies_get_a_clear_400_or_422_never_a_500(tmp_path, aiohttp_client):
    from nasd.config import Config
    from nasd.daemon import Nasd
    from nasd.web.app import make_app

    nasd = Nasd(Config(stateDir=tmp_path / "state"))
    await nasd.start()
    try:
        client = await aiohttp_client(make_app(nasd))
        url = "/apis/nasd.io/v1alpha1/zdatasets"
        deep = "[" * 100000 + "]" * 100000
        for body, ctype, status in ((deep, "application/json", 400), ("a: [", "application/yaml", 400),
                                    ('{"apiVersion": "nasd.io/v1alpha1", "kind": ["ZPool"]}', "application/json", 422)):
            resp = await client.post(url, data=body, headers={"Content-Type": ctype})
            assert resp.status == status, (body[:40], await resp.text())
            assert "Traceback" not in await resp.text()
    finally:
        await nasd.stop()
