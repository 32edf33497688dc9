"""A webhook receiver on loopback for tests: records what arrives, fails on request."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers webhooks with 200, or with `fail_first` 500s per webhook-id first."""

    port: int
    fail_first: int = 0
    always_fail: bool = False
    delay: Callable[[], float] = lambda: 0.0
    answer_check: bool = True
    got: list[Received] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            document = orjson.loads(body)
            if "adapty_check" in document:
                if not self.answer_check:
                    return JSONResponse({})
                return JSONResponse({"adapty_check_response": document["adapty_check"]})
            await asyncio.sleep(self.delay())
            webhook_id = request.headers["webhook-id"]
            self.tries[webhook_id] += 1
            failing = self.always_fail or self.tries[webhook_id] <= self.fail_first
            status = 500 if failing else 200
            self.got.append(Received(webhook_id, dict(request.headers), body, status))
            return Response(status_code=status)

        return app
