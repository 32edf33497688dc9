"""The ingress HTTP service: one endpoint per store, verify, keep, acknowledge."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import Counter, Histogram, make_asgi_app
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ingress.apple import AppleVerifier
from ingress.errors import BrokerUnavailableError, IngressError
from ingress.google_play import PlayClient, PushAuth, decode_push, purchase_token
from ingress.publisher import Publisher
from ingress.stripe_webhook import StripeInvoices, StripeVerifier, invoice_lookup
from processors.normalize.apple import NOT_FOLDED as APPLE_NOT_FOLDED
from processors.normalize.stripe import FOLDED as STRIPE_FOLDED
from processors.normalize.stripe import subscription_of
from runtime.catalog import Catalog
from schemas.enums import Store
from schemas.raw import RawNotification

log = logging.getLogger(__name__)
T = TypeVar("T")


def _json_body(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        **extra,
    }


# What each store sends (its signature is checked before anything else is read).
APP_STORE_BODY = _json_body(
    {
        "type": "object",
        "required": ["signedPayload"],
        "properties": {
            "signedPayload": {
                "type": "string",
                "minLength": 1,
                "description": "App Store Server Notifications V2: the signed JWS (facts 2).",
            }
        },
    }
)
STRIPE_BODY = _json_body(
    {
        "type": "object",
        "description": "A Stripe event, as Stripe signs it.",
        "required": ["id", "type", "data"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "type": {"type": "string"},
            "data": {
                "type": "object",
                "required": ["object"],
                "properties": {"object": {"type": "object"}},
            },
        },
    },
    parameters=[
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "description": "Stripe's signature of the body (`t=...,v1=...`).",
            "schema": {"type": "string", "minLength": 1},
        }
    ],
)
GOOGLE_PLAY_BODY = _json_body(
    {
        "type": "object",
        "description": "A Pub/Sub push of a Real-time Developer Notification.",
        "required": ["message"],
        "properties": {
            "message": {
                "type": "object",
                "required": ["data", "messageId"],
                "properties": {
                    "data": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "description": "The notification's JSON, base64-encoded.",
                    },
                    "messageId": {"type": "string", "minLength": 1},
                    "publishTime": {"type": "string"},
                    "attributes": {"type": "object"},
                },
            },
            "subscription": {"type": "string"},
        },
    },
    parameters=[
        {
            "name": "Authorization",
            "in": "header",
            "description": "`Bearer <OIDC token>` of the push subscription (or the shared "
            "secret, where `token` is not used).",
            "schema": {"type": "string"},
        },
        {
            "name": "token",
            "in": "query",
            "description": "The shared secret, when the push URL carries it.",
            "schema": {"type": "string"},
        },
    ],
)
# What a store is answered once its notification is kept (a component of the document).
KEPT: dict[int | str, Any] = {
    200: {
        "description": "Kept.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoreAccepted"}}},
    }
}

ACCEPTED = Counter("subledger_ingress_accepted_total", "Notifications kept", ["store"])
REJECTED = Counter("subledger_ingress_rejected_total", "Notifications refused", ["store", "code"])
UNFOLDED = Counter(
    "subledger_ingress_unfolded_total",
    "Kept notifications of a type no fold reads yet",
    ["store", "type"],
)
LATENCY = Histogram("subledger_ingress_seconds", "Request to broker acknowledgement", ["store"])


@dataclass
class GooglePlay:
    package: str
    auth: PushAuth
    client: PlayClient


@dataclass
class Ingress:
    catalog: Catalog
    publisher: Publisher
    apple: AppleVerifier | None = None
    stripe: StripeVerifier | None = None
    google: GooglePlay | None = None
    # Finds the invoice of a refunded charge that does not carry it (needs a Stripe key).
    stripe_api: StripeInvoices | None = None
    # Larger request bodies are refused with 413 before they are read.
    max_body_bytes: int = 1_048_576


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413, whether it declares its length
    or streams it: nothing of it is read into the application."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        chunks: list[Any] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = orjson.dumps(
            IngressError(
                413,
                "request_too_large",
                "non_field_errors",
                f"the request body is larger than {self.limit:,} bytes",
            ).body()
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(ingress: Ingress, lifespan: Any = None, docs: bool = True) -> FastAPI:
    """The HTTP app; `docs` serves /docs and /redoc from assets installed with the project
    (fastapi-offline), so they render without internet access."""
    if docs:
        app = FastAPIOffline(title="subledger ingress", lifespan=lifespan)
    else:
        app = FastAPI(title="subledger ingress", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=ingress.max_body_bytes)
    app.mount("/metrics", make_asgi_app())

    @app.exception_handler(IngressError)
    async def refused(request: Request, error: IngressError) -> JSONResponse:
        REJECTED.labels(_store_of(request), error.code).inc()
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(BrokerUnavailableError)
    async def unavailable(request: Request, error: BrokerUnavailableError) -> JSONResponse:
        log.warning("broker unavailable: %s", error)
        body = IngressError(
            503,
            "broker_unavailable",
            "non_field_errors",
            "the notification could not be stored; retry later",
        ).body()
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    @app.post(
        "/webhooks/app-store", response_model=None, responses=KEPT, openapi_extra=APP_STORE_BODY
    )
    async def app_store(request: Request) -> dict[str, str]:
        started = datetime.now(UTC)
        body = await request.body()
        if ingress.apple is None:
            raise _not_configured("App Store")
        signed = _field(_json(body), "signedPayload")
        payload = ingress.apple.verify(signed)
        uuid = payload.get("notificationUUID")
        if not isinstance(uuid, str) or not uuid:
            raise IngressError(
                400,
                "validation_error",
                "notificationUUID",
                "the notification has no notificationUUID",
            )
        transaction = (payload.get("data") or {}).get("transaction") or {}
        chain = transaction.get("originalTransactionId")
        await _keep(ingress, Store.APP_STORE, chain, uuid, started, body, payload)
        kind = payload.get("notificationType")
        if kind in APPLE_NOT_FOLDED:
            UNFOLDED.labels(Store.APP_STORE.value, kind).inc()
        return {"status": "accepted"}

    @app.post("/webhooks/stripe", response_model=None, responses=KEPT, openapi_extra=STRIPE_BODY)
    async def stripe_webhook(request: Request) -> dict[str, str]:
        started = datetime.now(UTC)
        body = await request.body()
        if ingress.stripe is None:
            raise _not_configured("Stripe")
        event = ingress.stripe.verify(body, request.headers.get("stripe-signature"))
        fetched = await _stripe_invoice(ingress.stripe_api, event)
        subscription = subscription_of(event, fetched)
        await _keep(ingress, Store.STRIPE, subscription, event["id"], started, body, event, fetched)
        if event.get("type") not in STRIPE_FOLDED or subscription is None:
            UNFOLDED.labels(Store.STRIPE.value, str(event.get("type"))).inc()
        return {"status": "accepted"}

    @app.post(
        "/webhooks/google-play", response_model=None, responses=KEPT, openapi_extra=GOOGLE_PLAY_BODY
    )
    async def google_play(request: Request) -> dict[str, str]:
        started = datetime.now(UTC)
        google = ingress.google
        if google is None:
            raise _not_configured("Google Play")
        google.auth.check(request.headers.get("authorization"), request.query_params.get("token"))
        body = await request.body()
        envelope = _json(body)
        message_id, notification = decode_push(envelope, google.package)
        token = purchase_token(notification)
        fetched = await _fetch(google, notification, token)
        linked = ((fetched or {}).get("subscription") or {}).get("linkedPurchaseToken")
        payload = {
            "message_id": message_id,
            "publish_time": envelope["message"].get("publishTime"),
            "notification": notification,
        }
        await _keep(
            ingress, Store.PLAY_STORE, linked or token, message_id, started, body, payload, fetched
        )
        if _play_kind(notification) in ("testNotification", "unknown"):
            UNFOLDED.labels(Store.PLAY_STORE.value, _play_kind(notification)).inc()
        return {"status": "accepted"}

    return app


async def _fetch(
    google: GooglePlay, notification: dict[str, Any], token: str | None
) -> dict[str, Any] | None:
    """The purchase's state from the Play Developer API, off the event loop."""
    if token is None or "voidedPurchaseNotification" in notification:
        return None
    subscription = "subscriptionNotification" in notification
    call = google.client.subscription if subscription else google.client.product
    state = await _ask_store(
        "Play Developer API", "the purchase state", call, google.package, token
    )
    return {"subscription" if subscription else "product": state}


async def _stripe_invoice(
    api: StripeInvoices | None, event: dict[str, Any]
) -> dict[str, Any] | None:
    """The invoice a refunded charge paid, from the Stripe API, when the charge names it
    without carrying it; None when it carries it or pays no invoice."""
    charge = event["data"]["object"]
    lookup = invoice_lookup(charge) if event.get("type") == "charge.refunded" else None
    if lookup is None:
        return None
    if api is None:
        # Kept as it came; without a key the refund cannot be placed (README, Stripe).
        log.warning("a refunded charge names no expanded invoice and no Stripe API key is set")
        return None
    kind, ident = lookup
    call = api.invoice if kind == "invoice" else api.invoice_paid_by
    invoice = await _ask_store("Stripe API", "the refunded charge's invoice", call, ident)
    return {"invoice": invoice} if invoice is not None else None


async def _ask_store(api: str, what: str, call: Callable[..., T], *args: Any) -> T:
    """A store API call, off the event loop. Out of reach, the notification is refused
    with 503, so that the store delivers it again; what was asked stays out of the log (a
    purchase token or an invoice identifies a buyer's purchase)."""
    try:
        return await run_in_threadpool(call, *args)
    except Exception as error:
        log.warning("%s failed: %s", api, type(error).__name__)
        raise IngressError(
            503,
            "store_api_unavailable",
            "non_field_errors",
            f"{what} could not be fetched; retry later",
        ) from error


def _play_kind(notification: dict[str, Any]) -> str:
    for kind in (
        "subscriptionNotification",
        "oneTimeProductNotification",
        "voidedPurchaseNotification",
        "testNotification",
    ):
        if kind in notification:
            return kind
    return "unknown"


async def _keep(
    ingress: Ingress,
    store: Store,
    chain: str | None,
    dedupe_key: str,
    received_at: datetime,
    body: bytes,
    payload: dict[str, Any],
    fetched: dict[str, Any] | None = None,
) -> None:
    """Publish to the store's raw topic, keyed by chain, and wait for the broker's ack.

    A notification that names no chain is keyed by its own dedupe key; one holding text
    the read models cannot keep (NUL, an unpaired surrogate) is refused, signed or not.
    """
    try:
        raw = RawNotification(
            store=store,
            dedupe_key=dedupe_key,
            received_at=received_at,
            body=body.decode(),
            payload=payload,
            fetched=fetched,
        )
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first.get("ctx", {}).get("error") or first.get("msg"))
        raise IngressError(400, "validation_error", "non_field_errors", message) from None
    key = f"{store.value}:{chain or '-' + dedupe_key}"
    topic = ingress.catalog[f"raw_{store.value}"].name
    await ingress.publisher.publish(topic, key.encode(), raw.model_dump_json().encode())
    ACCEPTED.labels(store.value).inc()
    LATENCY.labels(store.value).observe((datetime.now(UTC) - received_at).total_seconds())


def _not_configured(store: str) -> IngressError:
    return IngressError(
        503, "store_not_configured", "non_field_errors", f"{store} notifications are not configured"
    )


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise IngressError(
            400, "malformed_json", "non_field_errors", f"the body is not JSON: {error}"
        ) from error


def _field(document: Any, name: str) -> str:
    value = document.get(name) if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise IngressError(400, "validation_error", name, f"{name} is required")
    return value


def _store_of(request: Request) -> str:
    return request.url.path.rsplit("/", 1)[-1]


@asynccontextmanager
async def running(publisher: Any) -> AsyncIterator[None]:
    await publisher.start()
    try:
        yield
    finally:
        await publisher.stop()
