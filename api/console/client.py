"""The console reads and writes through the HTTP API itself, in process: the same
validation, commands, read-your-writes wait and error bodies as any API client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def pending(self) -> bool:
        """Accepted, but not yet readable (the read-your-writes wait ran out)."""
        return self.status == 202

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error(self) -> str:
        """The API's error messages as one sentence (DOMAIN.md section 8 body)."""
        body = self.body if isinstance(self.body, dict) else {}
        messages = []
        for item in body.get("errors") or ():
            source = item.get("source")
            for message in item.get("errors") or ():
                named = source and source not in ("non_field_errors", "null")
                messages.append(f"{source}: {message}" if named else str(message))
        return "; ".join(messages) or f"the API answered {self.status}"


@dataclass
class Api:
    """The app's own API, called with the session's key."""

    app: FastAPI
    _client: httpx.AsyncClient | None = field(default=None, init=False)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://console", timeout=60
            )
        return self._client

    async def call(
        self,
        key: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        response = await self.client.request(
            method,
            path,
            json=json,
            params=params,
            headers={"authorization": f"Api-Key {key}", **(headers or {})},
        )
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        return Answer(response.status_code, body)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
