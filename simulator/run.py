"""Sending a plan: signed notifications to the store webhooks, calls to the server-side API.

App Store notifications are signed with the development chain (`keys.py`), Stripe events
with the development secret; Google Play pushes carry the push secret. What ingress then
asks the stores is served by `StoreApis`: the Play Developer API's two calls (point
`SUBLEDGER_GOOGLE_PLAY_API_ENDPOINT` at it) and the Stripe API's invoice lookups of a
refunded charge (`SUBLEDGER_STRIPE_API_BASE`), from what the simulator sent.
Steps go out at a steady rate, several in flight, in plan order.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from simulator.keys import DevKeys, SigningAuthority
from simulator.plan import APP_APPLE_ID, BUNDLE, PACKAGE, Step

PROFILE_HEADER, CUSTOMER_HEADER = "adapty-profile-id", "adapty-customer-user-id"


def sign_apple(authority: SigningAuthority, claims: dict[str, Any]) -> bytes:
    """The notification as Apple posts it: nested infos signed, then the whole."""
    data = dict(claims["data"])
    data["signedTransactionInfo"] = authority.sign(data.pop("transaction"))
    if "renewal" in data:
        data["signedRenewalInfo"] = authority.sign(data.pop("renewal"))
    return orjson.dumps({"signedPayload": authority.sign({**claims, "data": data})})


def sign_stripe(secret: str, body: bytes, at: int | None = None) -> str:
    """A `Stripe-Signature` header, as Stripe computes it (t=..., v1=HMAC-SHA256)."""
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def push_envelope(notification: dict[str, Any]) -> bytes:
    """A Pub/Sub push: the message id follows the content, so a repeat is the same message."""
    data = orjson.dumps(notification)
    return orjson.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": hashlib.sha1(data).hexdigest()[:16],
                "publishTime": "2026-01-01T00:00:00Z",
            },
            "subscription": "projects/subledger-dev/subscriptions/play",
        }
    )


@dataclass
class StoreApis:
    """Stand-ins, from memory, for the store API calls ingress makes: Play's
    purchases.subscriptionsv2.get and productsv2.getproductpurchasev2, Stripe's
    invoice retrieval and invoice payments by payment intent."""

    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI(title="Store API stand-ins", openapi_url=None)
        base = "/androidpublisher/v3/applications/{package}/purchases"

        @app.get(base + "/subscriptionsv2/tokens/{token}")
        async def subscription(package: str, token: str) -> dict[str, Any]:
            return self._found(self.subscriptions, token)

        @app.get(base + "/productsv2/tokens/{token}")
        async def product(package: str, token: str) -> dict[str, Any]:
            return self._found(self.products, token)

        @app.get("/v1/invoices/{invoice_id}")
        async def invoice(invoice_id: str) -> Any:
            if invoice_id not in self.invoices:
                return JSONResponse(
                    {"error": {"type": "invalid_request_error", "code": "resource_missing"}},
                    status_code=404,
                )
            return self.invoices[invoice_id]

        @app.get("/v1/invoice_payments")
        async def invoice_payments(request: Request) -> dict[str, Any]:
            intent = request.query_params.get("payment[payment_intent]")
            paid = [i for i in self.invoices.values() if i.get("payment_intent") == intent]
            return {
                "object": "list",
                "url": "/v1/invoice_payments",
                "has_more": False,
                "data": [
                    {"id": f"inpay_{i['id']}", "object": "invoice_payment", "invoice": i}
                    for i in paid[:1]
                ],
            }

        return app

    def saw(self, event: dict[str, Any]) -> None:
        """Remember the invoices of the Stripe events sent, as Stripe would have them."""
        obj = (event.get("data") or {}).get("object") or {}
        if obj.get("object") == "invoice" and obj.get("id"):
            self.invoices[obj["id"]] = obj

    @staticmethod
    def _found(known: dict[str, dict[str, Any]], token: str) -> dict[str, Any]:
        if token not in known:
            raise HTTPException(404, "purchase token not found")
        return known[token]

    @asynccontextmanager
    async def serving(self, port: int) -> AsyncIterator[str]:
        """Serve on loopback `port` meanwhile; yields the API endpoint to configure."""
        server = uvicorn.Server(
            uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


@dataclass
class Outcome:
    sent: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 400)


class Simulator:
    def __init__(
        self,
        base_url: str,
        keys: DevKeys,
        api_key: str,
        play: StoreApis,
        *,
        rate: float = 50.0,
        concurrency: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.keys = keys
        self.api_key = api_key
        self.play = play
        self.rate = rate
        self.concurrency = concurrency
        self.outcome = Outcome()
        self.transport = transport
        # As an app does: calls about a profile wait until creating it has been answered.
        self._created: dict[int, asyncio.Event] = {}

    async def run(
        self, steps: list[Step], report: Callable[[Outcome, int], None] | None = None
    ) -> Outcome:
        limit = asyncio.Semaphore(self.concurrency)
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=30, transport=self.transport) as http:
            for index, step in enumerate(steps):
                delay = started + index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await limit.acquire()
                task = asyncio.create_task(self._send(http, step))
                task.add_done_callback(lambda _: limit.release())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if report is not None:
                    report(self.outcome, len(steps))
            if tasks:
                await asyncio.gather(*tasks)
        if report is not None:
            report(self.outcome, len(steps))
        return self.outcome

    async def _send(self, http: httpx.AsyncClient, step: Step) -> None:
        try:
            response = await self._request(http, step)
            status = response.status_code
            if status >= 400 and len(self.outcome.failures) < 20:
                self.outcome.failures.append(
                    f"{step.channel} {step.what}: {status} {response.text[:300]}"
                )
        except Exception as error:  # reported with its step; the run goes on
            status = 599
            if len(self.outcome.failures) < 20:
                self.outcome.failures.append(f"{step.channel} {step.what}: {error!r}")
        self.outcome.sent += 1
        self.outcome.statuses[(step.channel, status)] += 1

    async def _request(self, http: httpx.AsyncClient, step: Step) -> httpx.Response:
        match step.channel:
            case "app_store":
                body = sign_apple(self.keys.authority, step.body)
                return await http.post(f"{self.base}/webhooks/app-store", content=body)
            case "stripe":
                self.play.saw(step.body)
                body = orjson.dumps(step.body)
                signature = sign_stripe(self.keys.stripe_secret, body)
                return await http.post(
                    f"{self.base}/webhooks/stripe",
                    content=body,
                    headers={"Stripe-Signature": signature},
                )
            case "google_play":
                token = step.body["token"]
                if "subscription" in step.body:
                    self.play.subscriptions[token] = step.body["subscription"]
                else:
                    self.play.products[token] = step.body["product"]
                return await http.post(
                    f"{self.base}/webhooks/google-play",
                    params={"token": self.keys.google_push_secret},
                    content=push_envelope(step.body["notification"]),
                )
            case _:
                return await self._api(http, step)

    async def _api(self, http: httpx.AsyncClient, step: Step) -> httpx.Response:
        headers = {"Authorization": f"Api-Key {self.api_key}"}
        body = dict(step.body)
        created = self._created.setdefault(step.profile, asyncio.Event())
        if step.what == "create_profile":
            headers[CUSTOMER_HEADER] = body.pop("customer_user_id")
            headers[PROFILE_HEADER] = body.pop("profile_id")
            try:
                return await http.post(
                    f"{self.base}/api/v2/server-side-api/profile/", json=body, headers=headers
                )
            finally:
                created.set()
        await created.wait()
        headers[PROFILE_HEADER] = body.pop("profile_id")
        if step.what == "app_open":
            return await http.patch(
                f"{self.base}/api/v2/server-side-api/profile/", json=body, headers=headers
            )
        path = {"email_event": "email-events", "restore": "restore"}[step.what]
        return await http.post(
            f"{self.base}/api/v1/server-side-api/profile/{path}/", json=body, headers=headers
        )


def service_settings(keys: DevKeys, play_endpoint: str) -> dict[str, str]:
    """The SUBLEDGER_ settings under which the HTTP service accepts what the simulator sends."""
    return {
        "SUBLEDGER_APPLE_BUNDLE_ID": BUNDLE,
        "SUBLEDGER_APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "SUBLEDGER_APPLE_ENVIRONMENT": "Production",
        "SUBLEDGER_APPLE_ROOT_CERTIFICATES": orjson.dumps([str(keys.root_path)]).decode(),
        "SUBLEDGER_STRIPE_WEBHOOK_SECRETS": orjson.dumps([keys.stripe_secret]).decode(),
        "SUBLEDGER_STRIPE_API_KEY": "sk_test_subledger_development",
        "SUBLEDGER_STRIPE_API_BASE": play_endpoint,
        "SUBLEDGER_GOOGLE_PLAY_PACKAGE": PACKAGE,
        "SUBLEDGER_GOOGLE_PUSH_SECRET": keys.google_push_secret,
        "SUBLEDGER_GOOGLE_PLAY_API_ENDPOINT": play_endpoint,
    }
