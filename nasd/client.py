"""A small client for the REST API, over the unix socket or TCP with a token (used by the CLI)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from .models import GROUP_VERSION


class APIError(Exception):
    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)
        causes = body.get("details", {}).get("causes", []) if isinstance(body, dict) else []
        lines = [message] + [f"  - {c.get('message')}" for c in causes] if causes else [message]
        super().__init__("\n".join(str(x) for x in lines))


class Client:
    def __init__(self, socket: str | None = None, server: str | None = None, token: str | None = None):
        self.socket = None if server else socket
        self.base = (server or "http://nasd").rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.UnixConnector(path=self.socket) if self.socket else None
        return aiohttp.ClientSession(connector=connector, headers=self.headers)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session() as session:
            async with session.request(method, self.base + path, json=body) as resp:
                text = await resp.text()
                try:
                    data = json.loads(text)
                except ValueError:  # not an answer of the nasd API (a wrong --server, no such path)
                    where = f"{self.base}{path}"
                    message = f"HTTP {resp.status} without a JSON body from {where}: {text.strip()[:200]}"
                    raise APIError(resp.status, {"message": message}) from None
                if resp.status >= 400:
                    raise APIError(resp.status, data)
                return data

    async def list(self, plural: str) -> list[dict]:
        return (await self.request("GET", f"/apis/{GROUP_VERSION}/{plural}"))["items"]

    async def get(self, plural: str, name: str) -> dict:
        return await self.request("GET", f"/apis/{GROUP_VERSION}/{plural}/{_segment(name)}")

    async def apply(self, plural: str, manifest: dict) -> dict:
        return await self.request("POST", f"/apis/{GROUP_VERSION}/{plural}", manifest)

    async def delete(self, plural: str, name: str) -> dict:
        return await self.request("DELETE", f"/apis/{GROUP_VERSION}/{plural}/{_segment(name)}")


def _segment(name: str) -> str:
    """``name`` as one path segment: a '?', '#' or '/' in it must not change which object is meant."""
    return quote(name, safe="")
