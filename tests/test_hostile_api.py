"""Hostile requests to the REST API (issue 14), through the aiohttp app on a real Nasd: an alias
bomb or a deeply nested body, a body over 1 MiB, an unknown charset, a 253-character name, a
value echoed back, and a list of 10,000 objects while other requests wait for their turn."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import yaml

from nasd.config import Config
from nasd.daemon import Nasd
from nasd.limits import MAX_ALIAS_NODES, MAX_DEPTH
from nasd_testing.hostile import alias_bomb, dataset, nested
from nasd.web.app import make_app

URL = "/apis/nasd.io/v1alpha1/zdatasets"
#: the longest name Kubernetes allows: four DNS labels
LONGEST_NAME = ".".join(["a" * 63] * 3 + ["b" * 61])


@pytest.fixture
async def start_nasd(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A started Nasd on the test's state dir (no ZFS needed: nothing here reconciles); stopped at teardown."""
    started: list[Nasd] = []

    async def start(**config: Any) -> Nasd:
        nasd = Nasd(Config(stateDir=tmp_path / "state", **config))
        await nasd.start()
        started.append(nasd)
        return nasd

    yield start
    for nasd in started:
        await nasd.stop()


async def status_of(resp: Any) -> dict[str, Any]:
    text = await resp.text()
    assert len(text) < 10_000, f"{len(text)} characters of answer: {text[:500]}"
    assert "Traceback" not in text
    body = json.loads(text)
    assert body["kind"] == "Status" and body["code"] == resp.status, body
    return body


async def test_an_alias_bomb_body_is_a_400_naming_the_alias_limit(aiohttp_client, start_nasd):
    client = await aiohttp_client(make_app(await start_nasd()))

    resp = await client.post(URL, data=alias_bomb(), headers={"Content-Type": "application/yaml"})

    assert resp.status == 400
    message = (await status_of(resp))["message"]
    assert message.startswith("request body: ")
    assert f"aliases expand to more than {MAX_ALIAS_NODES} nodes" in message


@pytest.mark.parametrize("ctype", ["application/yaml", "application/json"])
async def test_a_body_nested_deeper_than_the_limit_is_a_400_naming_it(aiohttp_client, start_nasd, ctype):
    client = await aiohttp_client(make_app(await start_nasd()))
    data = yaml.safe_load(nested(MAX_DEPTH))  # (the deepest the limit allows, one level deeper below)
    body = nested(200) if ctype == "application/yaml" else json.dumps({**data, "x": json.loads("[" * 200 + "]" * 200)})

    resp = await client.post(URL, data=body, headers={"Content-Type": ctype})

    assert resp.status == 400
    assert f"request body: nests mappings and lists more than {MAX_DEPTH} levels deep" in (await status_of(resp))["message"]


async def test_a_body_over_1_mib_is_a_413_status_naming_the_limit(aiohttp_client, start_nasd):
    client = await aiohttp_client(make_app(await start_nasd()))
    manifest = dataset("big")
    manifest["metadata"]["annotations"] = {"padding": "x" * (1024 * 1024)}

    resp = await client.post(URL, json=manifest)

    assert resp.status == 413
    assert "larger than the limit of 1 MiB" in (await status_of(resp))["message"]


async def test_an_unknown_charset_is_a_415_naming_it(aiohttp_client, start_nasd):
    client = await aiohttp_client(make_app(await start_nasd()))

    for charset in ("klingon", "rot13"):
        resp = await client.post(URL, data=json.dumps(dataset("d")),
                                 headers={"Content-Type": f"application/json; charset={charset}"})

        assert resp.status == 415, await resp.text()
        assert f"unknown charset '{charset}'" in (await status_of(resp))["message"]


async def test_a_body_that_is_not_text_of_its_charset_is_a_400_asking_for_utf8(aiohttp_client, start_nasd):
    client = await aiohttp_client(make_app(await start_nasd()))

    resp = await client.post(URL, data=json.dumps(dataset("d")).encode() + b"\xff",
                             headers={"Content-Type": "application/json; charset=utf-8"})

    assert resp.status == 400
    assert "send the body as UTF-8" in (await status_of(resp))["message"]


async def test_an_object_with_a_253_character_name_is_stored_survives_a_restart_and_is_deleted(
    aiohttp_client, start_nasd, tmp_path
):
    assert len(LONGEST_NAME) == 253
    client = await aiohttp_client(make_app(await start_nasd()))
    manifest = dataset(LONGEST_NAME)
    manifest["spec"]["path"] = "long"

    resp = await client.put(f"{URL}/{LONGEST_NAME}", json=manifest)
    assert resp.status == 201, await resp.text()

    again = await aiohttp_client(make_app(await start_nasd()))
    resp = await again.get(f"{URL}/{LONGEST_NAME}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["metadata"]["name"] == LONGEST_NAME
    assert (await again.delete(f"{URL}/{LONGEST_NAME}")).status == 200
    assert [p for p in (tmp_path / "state" / "api").rglob("*") if p.is_file()] == []


async def test_an_error_never_echoes_a_long_value_or_every_one_of_many_problems(aiohttp_client, start_nasd):
    client = await aiohttp_client(make_app(await start_nasd()))
    long_value = {**dataset("d"), "apiVersion": "v" * 500_000}
    many_fields = {**dataset("d"), "spec": {"pool": "p", "path": "d", **{f"field{i}": i for i in range(5000)}}}

    for body in (long_value, many_fields):
        resp = await client.post(URL, json=body)

        assert resp.status == 422
        status = await status_of(resp)
        assert len(status["details"]["causes"]) <= 51
    assert status["details"]["causes"][-1]["message"].endswith("more problems")


async def test_listing_10000_objects_takes_seconds_and_healthz_answers_meanwhile(aiohttp_client, start_nasd, tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    for part in range(10):  # (a file may hold at most 1 MiB)
        docs = [dataset(f"ds{part}-{i}") for i in range(1000)]
        (folder / f"part{part}.yaml").write_text(yaml.safe_dump_all(docs))
    client = await aiohttp_client(make_app(await start_nasd(manifests=[folder])))

    async def list_all() -> tuple[float, dict]:
        started = time.monotonic()
        resp = await client.get(URL)
        assert resp.status == 200
        body = await resp.json()
        return time.monotonic() - started, body

    listing = asyncio.ensure_future(list_all())
    answered = [time.monotonic()]  # (this test's client shares the server's event loop: a blocked loop
    while not listing.done():      # delays the next answer, and shows as a gap between two of them)
        assert (await client.get("/healthz")).status == 200
        answered.append(time.monotonic())
        await asyncio.sleep(0.01)
    seconds, body = await listing
    gaps = [later - earlier for earlier, later in zip(answered, answered[1:])]

    print(f"\nlisted 10,000 objects in {seconds:.2f} s; /healthz answered {len(gaps)} times meanwhile, "
          f"at most {max(gaps):.3f} s apart")
    assert len(body["items"]) == 10_000
    assert body["kind"] == "ZDatasetList"
    assert sorted(i["metadata"]["name"] for i in body["items"]) == [i["metadata"]["name"] for i in body["items"]]
    assert seconds < 20
    assert len(gaps) > 1 and max(gaps) < 1


# -- the payload catalogue of tests/test_hostile_models.py, through the API -------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_hostile_models import (MODES, OTHER_PAYLOADS, SEEDS, TARGETS, TEXT_PAYLOADS,  # noqa: E402
                                       _harmless, _mutate)
from nasd.models import KINDS, parse_resource  # noqa: E402
from nasd.models.base import UNSAFE_TEXT  # noqa: E402

def _json_safe(payload: Any) -> bool:
    try:
        json.dumps(payload, allow_nan=False)
        return not (isinstance(payload, int) and abs(payload) >= 10 ** 18)
    except (ValueError, TypeError, RecursionError):
        return False


#: JSON can carry strings, numbers, lists and maps (not a cycle, NaN or a 5000-digit number)
_JSON_PAYLOADS = [p for p in TEXT_PAYLOADS + OTHER_PAYLOADS if _json_safe(p)]


async def _apply_batch(tmp_path: Path, batch: list[tuple[tuple, Any, str]]) -> None:
    from aiohttp.test_utils import TestClient, TestServer
    nasd = Nasd(Config(stateDir=tmp_path / f"state-{len(list(tmp_path.iterdir()))}"))
    await nasd.start()
    client = TestClient(TestServer(make_app(nasd)))
    await client.start_server()
    try:
        for (seed, path, is_key), payload, mode in batch:
            doc, _ = _mutate(SEEDS[seed], path, is_key, payload, mode)
            kind = KINDS.get(doc.get("kind")) if isinstance(doc.get("kind"), str) else None
            url = "/apis/nasd.io/v1alpha1/" + (kind.plural if kind else "zdatasets")
            resp = await client.post(url, data=json.dumps(doc), headers={"Content-Type": "application/json"})
            text = await resp.text()
            assert resp.status in (200, 201, 400, 409, 422), (resp.status, text[:500])
            assert "Traceback" not in text and len(text) < 20_000 and not UNSAFE_TEXT.search(json.loads(text)
                                                                                               .get("message", ""))
            if resp.status in (200, 201):  # accepted: then every value of what was stored is harmless
                _harmless(parse_resource(json.loads(text)))
            started = time.monotonic()
            assert (await client.get("/healthz")).status == 200 and time.monotonic() - started < 1.0
    finally:
        await client.close()
        await nasd.stop()


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(st.sampled_from(TARGETS), st.sampled_from(_JSON_PAYLOADS), st.sampled_from(MODES)),
                      min_size=40, max_size=40))
def test_a_hostile_value_in_any_field_through_the_api_is_a_4xx_naming_it_or_stored_harmless(tmp_path, batch):
    asyncio.run(_apply_batch(tmp_path, batch))
