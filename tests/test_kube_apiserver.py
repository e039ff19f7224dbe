"""FakeKubeAPI behaves like kube-apiserver where a controller, kubernetes-asyncio and kubectl depend on it.

Clients are the real ones: kubernetes-asyncio (CustomObjectsApi, CoreV1Api, Watch) and kubectl v1.32;
raw aiohttp only where a client hides the wire behaviour (status codes, headers, the watch stream).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import unquote

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from multidict import CIMultiDictProxy

from nasd_testing.kubeapi import FakeKubeAPI

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
EXAMPLES = ROOT / "examples"
GROUP, VERSION = "nasd.io", "v1alpha1"
TOKEN = "t0ken"
KUBECTL = shutil.which("kubectl")


# ----------------------------------------------------------------------------------------------- helpers

def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


def share(name: str = "media", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "smb", "dataset": "media", **spec}}


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI(token=TOKEN, bookmark_interval=0.2, history=1000)
    await server.start()
    for crd in crds():
        server.put_object(crd)
    yield server
    await server.stop()


@pytest.fixture
async def kube(api: FakeKubeAPI, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(api.write_kubeconfig(tmp_path / "kubeconfig")),
                                  client_configuration=cfg)
    async with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
def custom(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


class Raw:
    """Plain HTTP against the fake, for what the clients hide."""

    def __init__(self, api: FakeKubeAPI, session: aiohttp.ClientSession) -> None:
        self.api, self.session = api, session

    async def __call__(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                       headers: dict[str, str] | None = None) -> tuple[int, Any, CIMultiDictProxy[str]]:
        hdrs = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = content_type
        async with self.session.request(method, self.api.url + path, data=data, headers=hdrs) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return resp.status, parsed, resp.headers

    async def stream(self, path: str, deadline: float = 5.0) -> list[dict[str, Any]]:
        """Read a watch stream until the server ends it (or ``deadline`` seconds pass)."""
        events: list[dict[str, Any]] = []
        async with self.session.get(self.api.url + path, headers={"Authorization": f"Bearer {TOKEN}"},
                                    timeout=aiohttp.ClientTimeout(total=deadline)) as resp:
            assert resp.status == 200
            async for line in resp.content:
                if line.strip():
                    events.append(json.loads(line))
        return events


@pytest.fixture
async def raw(api: FakeKubeAPI) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        yield Raw(api, session)


SHARES = f"/apis/{GROUP}/{VERSION}/nasshares"


async def next_events(stream: watch.Watch, count: int, timeout: float = 5.0) -> list[tuple[str, dict[str, Any]]]:
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            event = await stream.__anext__()
            got.append((event["type"], event["raw_object"]))
    return got


# ------------------------------------------------------------------------------------ transport, errors

async def test_requests_without_the_bearer_token_are_401_status(api: FakeKubeAPI) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(api.url + "/api/v1/namespaces") as resp:
            assert resp.status == 401
            body = await resp.json()
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert api.requests[-1][:2] == ("GET", "/api/v1/namespaces")


async def test_create_is_201_with_resource_version_uid_and_generation_1_and_a_duplicate_is_409(
        custom: client.CustomObjectsApi, raw: Raw) -> None:
    created = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    md = created["metadata"]
    assert md["resourceVersion"].isdigit() and len(md["uid"]) == 36 and md["generation"] == 1
    assert md["creationTimestamp"].endswith("Z")
    status, body, _ = await raw("POST", SHARES, share("other"))
    assert status == 201 and int(body["metadata"]["resourceVersion"]) > int(md["resourceVersion"])
    with pytest.raises(ApiException) as err:
        await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    assert err.value.status == 409
    status_obj = json.loads(err.value.body)
    assert status_obj["reason"] == "AlreadyExists"
    assert status_obj["message"] == 'nasshares.nasd.io "media" already exists'
    assert status_obj["details"] == {"name": "media", "group": "nasd.io", "kind": "nasshares"}


async def test_get_of_a_missing_object_is_404_not_found_status(raw: Raw) -> None:
    status, body, _ = await raw("GET", f"{SHARES}/nope")
    assert status == 404
    assert (body["reason"], body["message"], body["code"]) == ("NotFound", 'nasshares.nasd.io "nope" not found', 404)


async def test_generate_name_makes_a_unique_name(raw: Raw) -> None:
    obj = share()
    obj["metadata"] = {"generateName": "share-"}
    names = set()
    for _ in range(3):
        status, body, _ = await raw("POST", SHARES, obj)
        assert status == 201
        names.add(body["metadata"]["name"])
    assert len(names) == 3 and all(n.startswith("share-") and len(n) == 11 for n in names)


async def test_stale_put_is_409_conflict_with_the_real_message(custom: client.CustomObjectsApi) -> None:
    first = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    first["spec"]["dataset"] = "other"
    await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", first)
    first["spec"]["dataset"] = "third"
    with pytest.raises(ApiException) as err:
        await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", first)
    assert err.value.status == 409
    body = json.loads(err.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on nasshares.nasd.io "media": the object has been '
                               'modified; please apply your changes to the latest version and try again')


async def test_put_without_resource_version_on_a_custom_resource_is_422(custom: client.CustomObjectsApi) -> None:
    await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    with pytest.raises(ApiException) as err:
        await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", share(dataset="x"))
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    assert "must be specified for an update" in body["message"]


async def test_secrets_default_their_type_and_move_string_data_into_data(raw: Raw) -> None:
    status, body, _ = await raw("POST", "/api/v1/namespaces/default/secrets",
                                {"metadata": {"name": "s"}, "stringData": {"pw": "Sekr1t"}})
    assert status == 201 and body["type"] == "Opaque" and body["data"] == {"pw": "U2VrcjF0"}
    assert "stringData" not in body


async def test_put_without_resource_version_on_a_builtin_is_an_unconditional_update(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    updated = await core.replace_namespaced_config_map("cm", "default", {"metadata": {"name": "cm"}, "data": {"a": "2"}})
    assert updated.data == {"a": "2"}


async def test_spec_change_bumps_generation_but_metadata_and_status_changes_do_not(
        custom: client.CustomObjectsApi) -> None:
    obj = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    obj["metadata"]["labels"] = {"a": "b"}
    obj = await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", obj)
    assert obj["metadata"]["generation"] == 1
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Exported"}]}
    obj = await custom.replace_cluster_custom_object_status(GROUP, VERSION, "nasshares", "media", obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["dataset"] = "other"
    obj = await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", obj)
    assert obj["metadata"]["generation"] == 2


async def test_an_update_that_changes_nothing_keeps_the_resource_version(custom: client.CustomObjectsApi) -> None:
    obj = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    again = await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


async def test_status_endpoint_ignores_spec_and_main_endpoint_ignores_status(custom: client.CustomObjectsApi) -> None:
    obj = share()
    obj["status"] = {"path": "/ignored/on/create"}
    obj = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", obj)
    assert "status" not in obj
    obj["spec"]["dataset"] = "changed-through-status"
    obj["metadata"]["labels"] = {"through": "status"}
    obj["status"] = {"path": "/mnt/tank/media"}
    obj = await custom.replace_cluster_custom_object_status(GROUP, VERSION, "nasshares", "media", obj)
    assert obj["status"]["path"] == "/mnt/tank/media"
    assert obj["spec"]["dataset"] == "media" and "labels" not in obj["metadata"]
    obj["status"] = {"path": "/through/main"}
    obj["spec"]["dataset"] = "changed"
    obj = await custom.replace_cluster_custom_object(GROUP, VERSION, "nasshares", "media", obj)
    assert obj["status"]["path"] == "/mnt/tank/media" and obj["spec"]["dataset"] == "changed"
    fetched = await custom.get_cluster_custom_object_status(GROUP, VERSION, "nasshares", "media")
    assert fetched["status"] == {"path": "/mnt/tank/media"}


# ---------------------------------------------------------------------------------------------- patches

async def test_merge_patch_merges_objects_and_null_deletes(custom: client.CustomObjectsApi) -> None:
    await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share(smb={"validUsers": ["a"]}))
    patched = await custom.patch_cluster_custom_object(
        GROUP, VERSION, "nasshares", "media",
        {"metadata": {"labels": {"x": "y"}}, "spec": {"smb": {"validUsers": ["b"], "readOnly": None}}},
        _content_type="application/merge-patch+json")
    assert patched["metadata"]["labels"] == {"x": "y"}
    assert patched["spec"]["smb"]["validUsers"] == ["b"]
    assert patched["spec"]["smb"]["readOnly"] is False  # deleted by the patch, defaulted again
    assert patched["metadata"]["generation"] == 2


async def test_json_patch_applies_operations_and_a_failing_test_op_is_422(custom: client.CustomObjectsApi,
                                                                       raw: Raw) -> None:
    await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    patched = await custom.patch_cluster_custom_object(GROUP, VERSION, "nasshares", "media", [
        {"op": "test", "path": "/spec/dataset", "value": "media"},
        {"op": "replace", "path": "/spec/dataset", "value": "documents"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["nasd.io/cleanup"]},
    ])
    assert patched["spec"]["dataset"] == "documents" and patched["metadata"]["finalizers"] == ["nasd.io/cleanup"]
    status, body, _ = await raw("PATCH", f"{SHARES}/media", [{"op": "test", "path": "/spec/dataset", "value": "media"}],
                                "application/json-patch+json")
    assert status == 422 and body["reason"] == "Invalid"
    assert "test failed" in body["details"]["causes"][0]["message"]


async def test_kubernetes_asyncio_default_patch_content_type_with_a_dict_is_rejected_merge_patch_is_accepted(
        custom: client.CustomObjectsApi, api: FakeKubeAPI) -> None:
    await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    body = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Exported"}]}}
    with pytest.raises(ApiException) as err:
        await custom.patch_cluster_custom_object_status(GROUP, VERSION, "nasshares", "media", body)
    assert err.value.status == 400
    assert "jsonpatch.Patch" in json.loads(err.value.body)["message"]
    assert api.requests[-1][3] == "application/json-patch+json"
    patched = await custom.patch_cluster_custom_object_status(GROUP, VERSION, "nasshares", "media", body,
                                                              _content_type="application/merge-patch+json")
    assert patched["status"]["conditions"][0] == {"type": "Ready", "status": "True", "reason": "Exported",
                                                  "message": ""}  # message defaulted by the schema


async def test_strategic_merge_and_apply_patches_are_415_for_custom_resources(raw: Raw) -> None:
    await raw("POST", SHARES, share())
    for ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        status, body, _ = await raw("PATCH", f"{SHARES}/media", {"spec": {}}, ctype)
        assert (status, body["reason"]) == (415, "UnsupportedMediaType")


async def test_a_patch_carrying_a_stale_resource_version_is_409(custom: client.CustomObjectsApi) -> None:
    obj = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    await custom.patch_cluster_custom_object(GROUP, VERSION, "nasshares", "media", {"spec": {"dataset": "b"}},
                                             _content_type="application/merge-patch+json")
    with pytest.raises(ApiException) as err:
        await custom.patch_cluster_custom_object(
            GROUP, VERSION, "nasshares", "media",
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"dataset": "c"}},
            _content_type="application/merge-patch+json")
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"


# ----------------------------------------------------------------------------------------------- watches

async def test_watch_from_a_resource_version_gets_exactly_the_later_events_in_order(raw: Raw) -> None:
    _, first, _ = await raw("POST", SHARES, share("a"))
    since = first["metadata"]["resourceVersion"]
    await raw("POST", SHARES, share("b"))
    await raw("PATCH", f"{SHARES}/a", {"spec": {"dataset": "x"}}, "application/merge-patch+json")
    await raw("DELETE", f"{SHARES}/b")
    events = await raw.stream(f"{SHARES}?watch=true&resourceVersion={since}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
    assert all(e["object"]["kind"] == "NASShare" for e in events)


async def test_watch_without_resource_version_starts_with_added_for_every_object(raw: Raw) -> None:
    await raw("POST", SHARES, share("a"))
    await raw("POST", SHARES, share("b"))
    for rv in ("", "&resourceVersion=0"):
        events = await raw.stream(f"{SHARES}?watch=1&timeoutSeconds=1{rv}")
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_timeout_seconds_ends_the_stream_cleanly(raw: Raw) -> None:
    started = time.monotonic()
    assert await raw.stream(f"{SHARES}?watch=true&timeoutSeconds=1") == []
    assert 0.9 <= time.monotonic() - started < 3


async def test_watch_bookmarks_arrive_with_allow_watch_bookmarks(raw: Raw, api: FakeKubeAPI) -> None:
    await raw("POST", SHARES, share())
    events = await raw.stream(f"{SHARES}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ADDED" and kinds.count("BOOKMARK") >= 3
    bookmark = events[-1]
    assert bookmark == {"type": "BOOKMARK", "object": {"kind": "NASShare", "apiVersion": "nasd.io/v1alpha1",
                                                       "metadata": {"resourceVersion": str(api.store.rv)}}}
    assert "BOOKMARK" not in [e["type"] for e in await raw.stream(f"{SHARES}?watch=true&timeoutSeconds=1")]


async def test_watch_from_a_compacted_resource_version_is_410_expired(raw: Raw, api: FakeKubeAPI,
                                                                     custom: client.CustomObjectsApi) -> None:
    _, obj, _ = await raw("POST", SHARES, share("a"))
    old = obj["metadata"]["resourceVersion"]
    await raw("POST", SHARES, share("b"))
    api.compact()
    events = await raw.stream(f"{SHARES}?watch=true&resourceVersion={old}")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {old} (")
    # resuming from the current version still works
    listed = await custom.list_cluster_custom_object(GROUP, VERSION, "nasshares")
    assert await raw.stream(f"{SHARES}?watch=true&timeoutSeconds=1&resourceVersion="
                            f"{listed['metadata']['resourceVersion']}") == []
    stream = watch.Watch()
    with pytest.raises(ApiException) as err:
        async for _ in stream.stream(custom.list_cluster_custom_object, GROUP, VERSION, "nasshares",
                                     resource_version=old, timeout_seconds=5):
            pass
    assert err.value.status == 410
    await stream.close()


async def test_a_small_history_expires_old_resource_versions() -> None:
    small = FakeKubeAPI(token=TOKEN, history=2)
    await small.start()
    try:
        small.put_object(crds()[0])
        objs = [small.put_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
                for i in range(4)]
        rvs = [o["metadata"]["resourceVersion"] for o in objs]
        async with aiohttp.ClientSession() as session:
            other = Raw(small, session)
            events = await other.stream(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rvs[0]}")
            assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
            events = await other.stream(f"/api/v1/configmaps?watch=1&timeoutSeconds=1&resourceVersion={rvs[1]}")
            assert [e["object"]["metadata"]["name"] for e in events] == ["c2", "c3"]
    finally:
        await small.stop()


async def test_kubernetes_asyncio_watch_sees_live_events(custom: client.CustomObjectsApi) -> None:
    stream = watch.Watch()
    events = stream.stream(custom.list_cluster_custom_object, GROUP, VERSION, "nasshares", timeout_seconds=5)
    await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", share())
    got = await next_events(events, 1)
    assert got[0][0] == "ADDED" and got[0][1]["metadata"]["name"] == "media"
    await custom.delete_cluster_custom_object(GROUP, VERSION, "nasshares", "media")
    assert (await next_events(events, 1))[0][0] == "DELETED"
    await stream.close()


async def test_drop_watches_ends_open_streams(raw: Raw, api: FakeKubeAPI) -> None:
    async def read() -> str:
        async with raw.session.get(api.url + SHARES + "?watch=true",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            try:
                async for _ in resp.content:
                    pass
            except aiohttp.ClientPayloadError:
                return "cut"
            return "ended"
    task = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    await api.drop_watches()
    assert await asyncio.wait_for(task, 3) == "cut"  # no terminating chunk: the connection just ends
    status, _, _ = await raw("GET", SHARES)
    assert status == 200


async def test_restart_keeps_objects_resource_versions_and_the_port(raw: Raw, api: FakeKubeAPI) -> None:
    _, obj, _ = await raw("POST", SHARES, share())
    url = api.url
    watching = asyncio.create_task(raw.stream(f"{SHARES}?watch=true", deadline=10))
    await asyncio.sleep(0.2)
    await api.restart()
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        await asyncio.wait_for(watching, 3)
    assert api.url == url
    status, again, _ = await raw("GET", f"{SHARES}/media")
    assert status == 200 and again["metadata"] == obj["metadata"]
    _, other, _ = await raw("POST", SHARES, share("other"))
    assert int(other["metadata"]["resourceVersion"]) == int(obj["metadata"]["resourceVersion"]) + 1
    events = await raw.stream(f"{SHARES}?watch=true&timeoutSeconds=1&resourceVersion="
                              f"{obj['metadata']['resourceVersion']}")
    assert [e["object"]["metadata"]["name"] for e in events] == ["other"]


# --------------------------------------------------------------------------------------------- selectors

async def test_label_and_field_selectors_filter_lists(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    for name, labels in [("a", {"app": "nas", "tier": "x"}), ("b", {"app": "nas"}), ("c", {"app": "web"}), ("d", {})]:
        await core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    async def names(**kw: Any) -> list[str]:
        return [i.metadata.name for i in (await core.list_namespaced_config_map("default", **kw)).items]
    assert await names(label_selector="app=nas") == ["a", "b"]
    assert await names(label_selector="app==nas,tier") == ["a"]
    assert await names(label_selector="app!=nas") == ["c", "d"]
    assert await names(label_selector="!app") == ["d"]
    assert await names(label_selector="app in (nas, web),!tier") == ["b", "c"]
    assert await names(label_selector="app notin (nas)") == ["c", "d"]
    assert await names(field_selector="metadata.name=c") == ["c"]
    assert await names(field_selector="metadata.name!=c,metadata.namespace==default") == ["a", "b", "d"]
    with pytest.raises(ApiException) as err:
        await names(field_selector="spec.nope=1")
    assert err.value.status == 400 and "field label not supported" in err.value.body


async def test_a_watch_with_a_selector_sees_objects_enter_and_leave_it(raw: Raw) -> None:
    watching = asyncio.create_task(raw.stream(f"{SHARES}?watch=true&labelSelector=pick%3Dyes&timeoutSeconds=1"))
    await asyncio.sleep(0.1)
    await raw("POST", SHARES, share("a"))
    await raw("PATCH", f"{SHARES}/a", {"metadata": {"labels": {"pick": "yes"}}}, "application/merge-patch+json")
    await raw("PATCH", f"{SHARES}/a", {"spec": {"dataset": "z"}}, "application/merge-patch+json")
    await raw("PATCH", f"{SHARES}/a", {"metadata": {"labels": None}}, "application/merge-patch+json")
    events = await watching
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[2]["object"]["metadata"]["labels"] == {"pick": "yes"}  # the last content it matched with


# -------------------------------------------------------------------------------- finalizers, deletion

async def test_delete_with_a_finalizer_marks_the_object_and_removing_the_finalizer_deletes_it(
        custom: client.CustomObjectsApi, raw: Raw) -> None:
    obj = share()
    obj["metadata"]["finalizers"] = ["nasd.io/cleanup"]
    created = await custom.create_cluster_custom_object(GROUP, VERSION, "nasshares", obj)
    rv = created["metadata"]["resourceVersion"]
    deleting = await custom.delete_cluster_custom_object(GROUP, VERSION, "nasshares", "media")
    md = deleting["metadata"]
    assert md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0 and md["generation"] == 2
    with pytest.raises(ApiException) as err:
        await custom.patch_cluster_custom_object(
            GROUP, VERSION, "nasshares", "media", {"metadata": {"finalizers": ["nasd.io/cleanup", "other/x"]}},
            _content_type="application/merge-patch+json")
    assert err.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in err.value.body
    await custom.patch_cluster_custom_object(GROUP, VERSION, "nasshares", "media",
                                             [{"op": "remove", "path": "/metadata/finalizers"}])
    status, _, _ = await raw("GET", f"{SHARES}/media")
    assert status == 404
    events = await raw.stream(f"{SHARES}?watch=true&timeoutSeconds=1&resourceVersion={rv}")
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]


async def test_deleting_an_owner_deletes_its_dependents_also_namespaced_ones(api: FakeKubeAPI, raw: Raw) -> None:
    _, owner, _ = await raw("POST", SHARES, share())
    ref = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "name": "media", "uid": owner["metadata"]["uid"]}
    for name in ("dep", "kept"):
        status, _, _ = await raw("POST", "/api/v1/namespaces/default/configmaps",
                                 {"metadata": {"name": name, "ownerReferences": [ref]}})
        assert status == 201
    _, other, _ = await raw("POST", SHARES, share("other"))
    api.put_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "ownerReferences": [
        ref, {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "name": "other", "uid": other["metadata"]["uid"]}]}})
    await raw("DELETE", f"{SHARES}/media")
    assert api.get_object("", "v1", "configmaps", "dep", "default") is None
    kept = api.get_object("", "v1", "configmaps", "kept", "default")
    assert kept is not None and [r["name"] for r in kept["metadata"]["ownerReferences"]] == ["other"]
    status, _, _ = await raw("DELETE", f"{SHARES}/other", {"propagationPolicy": "Orphan"})
    assert status == 200
    orphan = api.get_object("", "v1", "configmaps", "kept", "default")
    assert orphan is not None and "ownerReferences" not in orphan["metadata"]


async def test_namespaced_objects_need_an_existing_namespace_and_go_with_it(raw: Raw, api: FakeKubeAPI) -> None:
    status, body, _ = await raw("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "c"}})
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nope" not found')
    status, ns, _ = await raw("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": "work"}})
    assert status == 201 and ns["status"]["phase"] == "Active"
    await raw("POST", "/api/v1/namespaces/work/configmaps", {"metadata": {"name": "c"}})
    status, _, _ = await raw("DELETE", "/api/v1/namespaces/work")
    assert status == 200
    assert api.get_object("", "v1", "namespaces", "work") is None
    assert api.list_objects("", "v1", "configmaps", "work") == []


async def test_deleting_a_crd_removes_its_resource_and_objects(raw: Raw, api: FakeKubeAPI) -> None:
    await raw("POST", SHARES, share())
    status, _, _ = await raw("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/nasshares.nasd.io")
    assert status == 200
    status, _, _ = await raw("GET", SHARES)
    assert status == 404
    _, resources, _ = await raw("GET", f"/apis/{GROUP}/{VERSION}")
    assert "nasshares" not in [r["name"] for r in resources["resources"]]
    api.put_object([c for c in crds() if c["metadata"]["name"] == "nasshares.nasd.io"][0])
    _, listed, _ = await raw("GET", SHARES)
    assert listed["items"] == []


# ------------------------------------------------------------------------------------------ CRD schemas

async def test_schema_violations_are_422_naming_each_field(raw: Raw) -> None:
    bad = share(protocol="x", smb={"readOnly": "yes"})
    del bad["spec"]["dataset"]
    status, body, _ = await raw("POST", SHARES, bad)
    assert (status, body["reason"]) == (422, "Invalid")
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert causes["spec.protocol"] == 'Unsupported value: "x": supported values: "smb", "nfs"'
    assert causes["spec.dataset"] == "Required value"
    assert causes["spec.smb.readOnly"] == 'Invalid value: "string": spec.smb.readOnly in body must be of type boolean: "string"'
    assert body["message"].startswith('NASShare.nasd.io "media" is invalid: [')
    assert 'spec.protocol: Unsupported value: "x": supported values: "smb", "nfs"' in body["message"]


async def test_patterns_bounds_and_int_or_string_are_validated(raw: Raw) -> None:
    group = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASGroup", "metadata": {"name": "g"},
             "spec": {"directory": "local", "gid": 10}}
    status, body, _ = await raw("POST", f"/apis/{GROUP}/{VERSION}/nasgroups", group)
    assert status == 422
    assert body["details"]["causes"][0] == {"reason": "FieldValueInvalid", "field": "spec.gid",
                                            "message": "Invalid value: 10: spec.gid in body should be greater than or equal to 1000"}
    pool = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "p"},
            "spec": {"vdevs": [{"devices": []}], "files": {"/a": "2Gi", "/b": 1024, "/c": "lots", "/d": True}}}
    status, body, _ = await raw("POST", f"/apis/{GROUP}/{VERSION}/zpools", pool)
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert set(causes) == {"spec.vdevs[0].devices", "spec.files./c", "spec.files./d"}
    assert "should match" in causes["spec.files./c"] and "integer,string" in causes["spec.files./d"]


async def test_metadata_name_must_be_a_dns_subdomain(raw: Raw) -> None:
    status, body, _ = await raw("POST", SHARES, share("Not_Valid"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123 subdomain" in body["message"]


async def test_defaults_apply_in_nested_objects_and_array_items(raw: Raw) -> None:
    status, body, _ = await raw("POST", SHARES, share(smb={"timeMachine": {}}))
    assert status == 201
    smb = body["spec"]["smb"]
    assert (smb["readOnly"], smb["browseable"], smb["caseSensitive"], smb["timeMachine"]["enabled"]) == (
        False, True, "auto", False)
    assert "nfs" not in body["spec"]  # absent objects get no defaults
    pool = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZPool", "metadata": {"name": "p"},
            "spec": {"vdevs": [{"devices": ["/a"]}, {"type": "mirror", "devices": ["/b", "/c"]}]}}
    status, body, _ = await raw("POST", f"/apis/{GROUP}/{VERSION}/zpools", pool)
    assert status == 201 and [v["type"] for v in body["spec"]["vdevs"]] == ["stripe", "mirror"]
    assert body["spec"]["deletionPolicy"] == "Retain"


async def test_unknown_fields_are_pruned_with_a_warning_unless_strict(raw: Raw) -> None:
    obj = share(foo=1)
    obj["metadata"]["bogus"] = True
    obj["extra"] = {"a": 1}
    status, body, headers = await raw("POST", SHARES, obj)
    assert status == 201 and "foo" not in body["spec"] and "extra" not in body and "bogus" not in body["metadata"]
    assert 'unknown field \\"spec.foo\\"' in " ".join(headers.getall("Warning"))
    obj["metadata"]["name"] = "ignored"
    status, body, headers = await raw("POST", SHARES + "?fieldValidation=Ignore", obj)
    assert status == 201 and "Warning" not in headers and "foo" not in body["spec"]
    obj["metadata"]["name"] = "strict"
    status, body, _ = await raw("POST", SHARES + "?fieldValidation=Strict", obj)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"].startswith(
        'NASShare in version "v1alpha1" cannot be handled as a NASShare: strict decoding error: unknown field "')
    for field in ("extra", "metadata.bogus", "spec.foo"):
        assert f'unknown field "{field}"' in body["message"]
    status, body, _ = await raw("PATCH", f"{SHARES}/media?fieldValidation=Strict", {"spec": {"bar": 1}},
                                "application/merge-patch+json")
    assert status == 400 and body["message"] == 'strict decoding error: unknown field "spec.bar"'


async def test_preserve_unknown_fields_keeps_them(raw: Raw) -> None:
    obj = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": "d"},
           "spec": {"pool": "tank", "path": "d", "properties": {"anything": {"goes": 1}}}}
    status, body, _ = await raw("POST", f"/apis/{GROUP}/{VERSION}/zdatasets", obj)
    assert status == 201 and body["spec"]["properties"] == {"anything": {"goes": 1}}
    status, body, _ = await raw("PATCH", f"/apis/{GROUP}/{VERSION}/zdatasets/d/status",
                                {"status": {"custom": "kept", "used": None}}, "application/merge-patch+json")
    assert status == 200 and body["status"] == {"custom": "kept"}


async def test_crd_gets_established_and_its_resource_is_discoverable(raw: Raw) -> None:
    _, crd, _ = await raw("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/nasshares.nasd.io")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and crd["status"]["acceptedNames"]["kind"] == "NASShare"
    _, resources, _ = await raw("GET", f"/apis/{GROUP}/{VERSION}")
    entry = [r for r in resources["resources"] if r["name"] == "nasshares"][0]
    assert (entry["kind"], entry["namespaced"], entry["shortNames"], entry["categories"]) == (
        "NASShare", False, ["nsh"], ["nas"])
    assert "nasshares/status" in [r["name"] for r in resources["resources"]]
    _, groups, _ = await raw("GET", "/apis")
    assert "nasd.io" in [g["name"] for g in groups["groups"]]


# ------------------------------------------------------------------------------------------------ events

async def test_events_about_cluster_scoped_objects_must_be_in_default(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespace({"metadata": {"name": "other"}})
    event = {"metadata": {"name": "media.1"}, "reason": "Exported", "message": "m", "type": "Normal",
             "involvedObject": {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "name": "media", "uid": "u1"}}
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_event("other", event)
    assert err.value.status == 422 and "involvedObject.namespace" in err.value.body
    await core.create_namespaced_event("default", event)
    found = await core.list_event_for_all_namespaces(
        field_selector="involvedObject.name=media,involvedObject.namespace=,involvedObject.kind=NASShare,"
                       "involvedObject.uid=u1")
    assert [e.reason for e in found.items] == ["Exported"]
    none = await core.list_event_for_all_namespaces(field_selector="involvedObject.uid=u2")
    assert none.items == []


# -------------------------------------------------------------------------------------------- discovery

async def test_tables_carry_printer_columns_from_status_conditions(raw: Raw) -> None:
    await raw("POST", SHARES, share())
    await raw("PATCH", f"{SHARES}/media/status",
              {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NoDataset"}]}},
              "application/merge-patch+json")
    status, table, _ = await raw("GET", SHARES, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Reason", "Protocol", "UNC", "Export", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == ["media", "False", "NoDataset", "smb"] and cells[6].endswith("s")
    assert table["columnDefinitions"][5]["priority"] == 1  # Export: only with -o wide
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


# -------------------------------------------------------------------------------------------------- kubectl

@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[tuple[FakeKubeAPI, Path]]:
    """A server without CRDs and a kubeconfig for it (HTTPS: kubectl sends a token only over TLS)."""
    server = FakeKubeAPI(token=TOKEN, bookmark_interval=1.0)
    await server.start()
    yield server, server.write_kubeconfig(tmp_path / "kubeconfig")
    await server.stop()


async def kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    assert KUBECTL, "kubectl is not installed"
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig.parent / "kubectl-cache"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_authenticates_with_the_kubeconfig_token_over_https(open_api: tuple[FakeKubeAPI, Path]) -> None:
    api, kubeconfig = open_api
    assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == api.tls_url
    rc, out, err = await kubectl(kubeconfig, "get", "namespaces")
    assert rc == 0 and "kube-system" in out, err
    rc, out, err = await kubectl(kubeconfig, "--token", "wrong", "get", "namespaces")
    assert rc != 0 and "Unauthorized" in err


async def test_kubectl_create_sends_protobuf_which_the_server_reads(open_api: tuple[FakeKubeAPI, Path]) -> None:
    api, kubeconfig = open_api
    rc, out, err = await kubectl(kubeconfig, "create", "namespace", "nasd-system")
    assert rc == 0, err
    rc, out, err = await kubectl(kubeconfig, "create", "secret", "generic", "alice-pw", "-n", "nasd-system",
                                 "--from-literal=password=Sekr1t")
    assert rc == 0, err
    assert ("POST", "/api/v1/namespaces/nasd-system/secrets") in [r[:2] for r in api.requests
                                                                  if r[3] == "application/vnd.kubernetes.protobuf"]
    secret = api.get_object("", "v1", "secrets", "alice-pw", "nasd-system")
    assert secret is not None and secret["data"] == {"password": "U2VrcjF0"} and secret["type"] == "Opaque"
    assert "selfLink" not in secret["metadata"]
    rc, out, err = await kubectl(kubeconfig, "delete", "namespace", "nasd-system")
    assert rc == 0, err
    assert api.get_object("", "v1", "namespaces", "nasd-system") is None
    assert api.list_objects("", "v1", "secrets", "nasd-system") == []


async def test_kubectl_applies_the_crds_and_examples_and_gets_them(open_api: tuple[FakeKubeAPI, Path],
                                                                   tmp_path: Path) -> None:
    api, kubeconfig = open_api
    rc, out, err = await kubectl(kubeconfig, "apply", "-f", str(CRD_DIR))
    assert rc == 0, err
    assert "customresourcedefinition.apiextensions.k8s.io/nasshares.nasd.io created" in out
    examples = tmp_path / "examples"
    examples.mkdir()
    for path in EXAMPLES.glob("*.yaml"):
        shutil.copy(path, examples / path.name)
    rc, out, err = await kubectl(kubeconfig, "apply", "-f", str(examples))
    assert rc == 0, err
    assert "nasshare.nasd.io/media created" in out and "zpool.nasd.io/tank created" in out
    # fieldValidation=Strict went to the server: kubectl left validation to it (OpenAPI v3 said it can)
    posts = [r for r in api.requests if r[0] == "POST" and "/nasd.io/" in r[1]]
    assert posts and all("fieldValidation=Strict" in r[2] for r in posts)
    # applying again patches with a JSON merge patch and changes nothing
    rc, out, err = await kubectl(kubeconfig, "apply", "-f", str(examples))
    assert rc == 0 and "nasshare.nasd.io/media unchanged" in out, err
    # discovery: kubectl asked for aggregated discovery, got plain JSON and read the legacy documents
    assert ("GET", f"/apis/{GROUP}/{VERSION}") in [r[:2] for r in api.requests]

    api.put_object({**api.get_object(GROUP, VERSION, "nasshares", "media"),
                    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Exported"}]}})
    rc, out, err = await kubectl(kubeconfig, "get", "nasshares")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "REASON", "PROTOCOL", "UNC", "AGE"]
    media = [line.split() for line in lines if line.startswith("media")][0]
    assert media[:4] == ["media", "True", "Exported", "smb"]
    rc, out, err = await kubectl(kubeconfig, "get", "nas")
    assert rc == 0, err
    for kind in ("nasdirectory.nasd.io/local", "nasuser.nasd.io/demo", "nasshare.nasd.io/media",
                 "zdataset.nasd.io/media", "zpool.nasd.io/tank", "zsnapshotschedule.nasd.io/media-hourly"):
        assert kind in out


async def test_kubectl_describe_shows_events_and_apply_of_an_unknown_field_fails(
        open_api: tuple[FakeKubeAPI, Path], tmp_path: Path) -> None:
    api, kubeconfig = open_api
    for crd in crds():
        api.put_object(crd)
    obj = api.put_object(share())
    api.put_object({"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": "media.17f", "namespace": "default"},
                    "involvedObject": {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "name": "media",
                                       "uid": obj["metadata"]["uid"]},
                    "reason": "Exported", "message": "share media is exported over SMB", "type": "Normal",
                    "source": {"component": "nasd"}, "count": 1,
                    "firstTimestamp": obj["metadata"]["creationTimestamp"],
                    "lastTimestamp": obj["metadata"]["creationTimestamp"]})
    rc, out, err = await kubectl(kubeconfig, "describe", "nasshare", "media")
    assert rc == 0, err
    assert "Events:" in out and "Exported" in out and "share media is exported over SMB" in out
    searches = [unquote(r[2]) for r in api.requests if r[:2] == ("GET", "/api/v1/events")]  # all namespaces
    assert any("involvedObject.name=media" in q and "involvedObject.kind=NASShare" in q for q in searches)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(share("bad", foo="bar")))
    rc, out, err = await kubectl(kubeconfig, "apply", "-f", str(bad))
    assert rc != 0 and 'unknown field "spec.foo"' in err
    bad.write_text(yaml.safe_dump(share("bad", protocol="ftp")))
    rc, out, err = await kubectl(kubeconfig, "apply", "-f", str(bad))
    assert rc != 0 and 'spec.protocol: Unsupported value: "ftp"' in err


async def test_kubectl_delete_waits_for_the_finalizer_to_go(open_api: tuple[FakeKubeAPI, Path]) -> None:
    api, kubeconfig = open_api
    for crd in crds():
        api.put_object(crd)
    for name in ("media", "quick"):
        obj = share(name)
        obj["metadata"]["finalizers"] = ["nasd.io/cleanup"]
        api.put_object(obj)

    async def remove_finalizer_later() -> None:
        while True:
            current = api.get_object(GROUP, VERSION, "nasshares", "media")
            if current and current["metadata"].get("deletionTimestamp"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        current["metadata"]["finalizers"] = []
        api.put_object(current)
    remover = asyncio.create_task(remove_finalizer_later())
    started = time.monotonic()
    rc, out, err = await kubectl(kubeconfig, "delete", "nasshare", "media")
    assert rc == 0, err
    assert 'nasshare.nasd.io "media" deleted' in out
    assert remover.done() and time.monotonic() - started >= 0.5
    assert any(r[0] == "GET" and "watch=true" in r[2] and "metadata.name%3Dmedia" in r[2] for r in api.requests)
    rc, out, err = await kubectl(kubeconfig, "get", "nasshare", "media")
    assert rc != 0 and 'nasshares.nasd.io "media" not found' in err
    rc, out, err = await kubectl(kubeconfig, "delete", "nasshare", "quick", "--wait=false")
    assert rc == 0, err
    still = api.get_object(GROUP, VERSION, "nasshares", "quick")
    assert still is not None and still["metadata"]["deletionTimestamp"]
