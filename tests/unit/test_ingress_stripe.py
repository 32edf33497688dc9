"""POST /webhooks/stripe: Stripe-Signature verified on the raw body, 300 s tolerance."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from ingress.app import Ingress, create_app
from ingress.stripe_webhook import StripeVerifier
from runtime.catalog import load_catalog
from schemas.raw import RawNotification
from tests.unit.test_ingress_app_store import MemoryPublisher

OLD, NEW = "whsec_old", "whsec_new"


def event(kind: str = "customer.subscription.updated", **obj: object) -> bytes:
    body = {
        "id": "evt_1",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "livemode": True,
        "data": {"object": {"id": "sub_9", "object": "subscription", "status": "active", **obj}},
    }
    return orjson.dumps(body)


def signed(body: bytes, secret: str, at: int | None = None) -> str:
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Ingress(catalog=load_catalog(), publisher=publisher, stripe=StripeVerifier([OLD, NEW]))
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as http:
        yield http


async def post(client: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await client.post("/webhooks/stripe", content=body, headers=headers)


@pytest.mark.parametrize("secret", [OLD, NEW])
async def test_an_event_signed_with_either_secret_is_kept_by_subscription(
    client: httpx.AsyncClient, publisher: MemoryPublisher, secret: str
) -> None:
    body = event()
    response = await post(client, body, signed(body, secret))
    assert response.status_code == 200
    ((topic, key, value),) = publisher.records
    assert (topic, key) == ("store.stripe.notifications", b"stripe:sub_9")
    raw = RawNotification.model_validate_json(value)
    assert (raw.dedupe_key, raw.body.encode()) == ("evt_1", body)


async def test_an_invoice_is_keyed_by_its_subscription(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    body = orjson.dumps(
        {
            "id": "evt_2",
            "type": "invoice.paid",
            "data": {
                "object": {
                    "id": "in_1",
                    "object": "invoice",
                    "parent": {"subscription_details": {"subscription": "sub_7"}},
                }
            },
        }
    )
    assert (await post(client, body, signed(body, NEW))).status_code == 200
    assert publisher.records[0][1] == b"stripe:sub_7"


@pytest.mark.parametrize(
    ("signature", "status", "code"),
    [
        pytest.param(None, 400, "validation_error", id="no header"),
        pytest.param("t=1,v1=deadbeef", 401, "invalid_signature", id="wrong signature"),
        pytest.param("garbage", 401, "invalid_signature", id="malformed header"),
    ],
)
async def test_bad_signatures_are_refused(
    client: httpx.AsyncClient,
    publisher: MemoryPublisher,
    signature: str | None,
    status: int,
    code: str,
) -> None:
    response = await post(client, event(), signature)
    assert (response.status_code, response.json()["error_code"]) == (status, code)
    assert publisher.records == []


async def test_a_signature_older_than_300_seconds_is_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    body = event()
    response = await post(client, body, signed(body, NEW, at=int(time.time()) - 301))
    assert response.status_code == 401
    assert publisher.records == []


async def test_a_body_changed_after_signing_is_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    signature = signed(event(), NEW)
    response = await post(client, event(status="canceled"), signature)
    assert response.status_code == 401
    assert publisher.records == []


# --- a refunded charge is kept with the invoice it paid, keyed by that invoice's chain ------

INVOICE = {
    "id": "in_5",
    "object": "invoice",
    "parent": {"subscription_details": {"subscription": "sub_9"}},
}


class RecordedInvoices:
    """The Stripe API as ingress calls it, answering from memory; `down` fails every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down = False

    def invoice(self, invoice_id: str) -> dict[str, object] | None:
        return self._answer("invoice", invoice_id)

    def invoice_paid_by(self, payment_intent: str) -> dict[str, object] | None:
        return self._answer("payment_intent", payment_intent)

    def _answer(self, kind: str, ident: str) -> dict[str, object] | None:
        self.calls.append((kind, ident))
        if self.down:
            raise ConnectionError("api.stripe.com is out of reach")
        return INVOICE if ident in ("in_5", "pi_5") else None


def refunded(**charge: object) -> bytes:
    obj = {"id": "ch_5", "object": "charge", "amount": 999, "amount_refunded": 999, **charge}
    body = {
        "id": "evt_r",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "livemode": True,
        "data": {"object": obj},
    }
    return orjson.dumps(body)


@pytest.fixture
def invoices() -> RecordedInvoices:
    return RecordedInvoices()


@pytest.fixture
async def with_api(
    publisher: MemoryPublisher, invoices: RecordedInvoices
) -> AsyncIterator[httpx.AsyncClient]:
    ingress = Ingress(
        catalog=load_catalog(),
        publisher=publisher,
        stripe=StripeVerifier([NEW]),
        stripe_api=invoices,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ingress)), base_url="http://ingress"
    ) as http:
        yield http


@pytest.mark.parametrize(
    ("charge", "calls"),
    [
        ({"invoice": "in_5", "payment_intent": "pi_5"}, [("invoice", "in_5")]),
        ({"payment_intent": "pi_5"}, [("payment_intent", "pi_5")]),  # 2025-03-31.basil on
        ({"invoice": INVOICE}, []),  # expanded: nothing to ask
    ],
)
async def test_a_refunded_charge_is_kept_with_its_invoice_by_subscription(
    with_api: httpx.AsyncClient,
    publisher: MemoryPublisher,
    invoices: RecordedInvoices,
    charge: dict[str, object],
    calls: list[tuple[str, str]],
) -> None:
    body = refunded(**charge)
    response = await post(with_api, body, signed(body, NEW))
    assert response.status_code == 200
    assert invoices.calls == calls
    ((_, key, value),) = publisher.records
    assert key == b"stripe:sub_9"
    raw = RawNotification.model_validate_json(value)
    assert raw.fetched == (None if not calls else {"invoice": INVOICE})


async def test_a_refund_of_no_invoice_is_kept_as_it_came(
    with_api: httpx.AsyncClient, publisher: MemoryPublisher, invoices: RecordedInvoices
) -> None:
    body = refunded(invoice=None, payment_intent="pi_1")  # a one-off charge
    assert (await post(with_api, body, signed(body, NEW))).status_code == 200
    unknown = refunded(invoice="in_404")
    assert (await post(with_api, unknown, signed(unknown, NEW))).status_code == 200
    assert invoices.calls == [("invoice", "in_404")]
    assert [key for _, key, _ in publisher.records] == [b"stripe:-evt_r", b"stripe:-evt_r"]


async def test_an_unreachable_stripe_api_answers_503_so_stripe_retries(
    with_api: httpx.AsyncClient, publisher: MemoryPublisher, invoices: RecordedInvoices
) -> None:
    invoices.down = True
    body = refunded(invoice="in_5")
    response = await post(with_api, body, signed(body, NEW))
    assert response.status_code == 503
    assert response.json()["error_code"] == "store_api_unavailable"
    assert publisher.records == []


async def test_without_a_stripe_key_a_refund_naming_its_invoice_is_kept_unplaced(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    body = refunded(invoice="in_5")
    assert (await post(client, body, signed(body, NEW))).status_code == 200
    ((_, key, value),) = publisher.records
    assert key == b"stripe:-evt_r"
    assert RawNotification.model_validate_json(value).fetched is None
