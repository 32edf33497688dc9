"""POST /webhooks/app-store: verified notifications are kept; bad input is refused whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from ingress.app import Ingress, create_app
from ingress.apple import AppleVerifier
from ingress.errors import BrokerUnavailableError
from runtime.catalog import load_catalog
from schemas.raw import RawNotification
from tests.apple_notifications import APP_APPLE_ID, BUNDLE, notification, transaction
from tests.apple_signing import SigningAuthority

CA = SigningAuthority()


class MemoryPublisher:
    """A hand-written fake of the broker write: records, or fails like an absent broker."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.down = False

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self.down:
            raise BrokerUnavailableError("no broker")
        self.records.append((topic, key, value))

    async def unavailable(self) -> str | None:
        return "no broker" if self.down else None


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[httpx.AsyncClient]:
    verifier = AppleVerifier([CA.root_der], "Production", BUNDLE, APP_APPLE_ID)
    app = create_app(Ingress(catalog=load_catalog(), publisher=publisher, apple=verifier))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as http:
        yield http


async def post(client: httpx.AsyncClient, body: object) -> tuple[int, dict[str, object]]:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await client.post("/webhooks/app-store", content=content)
    return response.status_code, response.json()


async def test_a_verified_notification_is_kept_keyed_by_its_chain(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    signed = notification(CA, notification_uuid="n-1")
    assert await post(client, {"signedPayload": signed}) == (200, {"status": "accepted"})
    ((topic, key, value),) = publisher.records
    assert (topic, key) == ("store.app_store.notifications", b"app_store:2000000001")
    raw = RawNotification.model_validate_json(value)
    assert raw.dedupe_key == "n-1"
    assert raw.payload["data"]["transaction"]["price"] == 9990
    assert raw.payload["data"]["renewal"]["autoRenewStatus"] == 1
    assert orjson.loads(raw.body) == {"signedPayload": signed}


async def test_a_type_no_fold_reads_is_still_kept(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    assert (await post(client, {"signedPayload": notification(CA, "TEST", None)}))[0] == 200
    assert len(publisher.records) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(b"{not json", 400, "malformed_json", id="malformed JSON"),
        pytest.param({"payload": "x"}, 400, "validation_error", id="no signedPayload"),
        pytest.param({"signedPayload": "abc.def.ghi"}, 401, "invalid_signature", id="garbage JWS"),
        pytest.param(
            {"signedPayload": notification(SigningAuthority())},
            401,
            "invalid_signature",
            id="signed by another authority",
        ),
        pytest.param(
            {"signedPayload": notification(CA, bundle="com.other.app")},
            400,
            "invalid_signature",
            id="another app's bundle",
        ),
        pytest.param(
            {"signedPayload": notification(CA, environment="Sandbox")},
            400,
            "invalid_signature",
            id="another environment",
        ),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_published(
    client: httpx.AsyncClient, publisher: MemoryPublisher, body: object, status: int, code: str
) -> None:
    got_status, got = await post(client, body)
    assert (got_status, got["error_code"], got["status_code"]) == (status, code, status)
    assert isinstance(got["errors"], list)
    assert got["errors"][0]["errors"]
    assert publisher.records == []


async def test_a_tampered_payload_is_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    header, _, signature = notification(CA).split(".")
    forged_claims = CA.sign({"notificationType": "REFUND"}).split(".")[1]
    status, got = await post(client, {"signedPayload": f"{header}.{forged_claims}.{signature}"})
    assert (status, got["error_code"]) == (401, "invalid_signature")
    assert publisher.records == []


async def test_an_unreachable_broker_answers_503(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    publisher.down = True
    status, got = await post(client, {"signedPayload": notification(CA)})
    assert (status, got["error_code"]) == (503, "broker_unavailable")


async def test_an_expired_certificate_chain_is_refused_at_the_signing_date(
    client: httpx.AsyncClient,
) -> None:
    old = transaction(signedDate=0, purchaseDate=0, originalPurchaseDate=0, expiresDate=1)
    status, _ = await post(client, {"signedPayload": notification(CA, tx=old)})
    assert status == 401


# Every notificationType and subtype of facts 3.2.
ALL_TYPES = [
    ("SUBSCRIBED", "INITIAL_BUY"),
    ("SUBSCRIBED", "RESUBSCRIBE"),
    ("DID_RENEW", None),
    ("DID_RENEW", "BILLING_RECOVERY"),
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"),
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"),
    ("DID_CHANGE_RENEWAL_PREF", "UPGRADE"),
    ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"),
    ("DID_CHANGE_RENEWAL_PREF", None),
    ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"),
    ("DID_FAIL_TO_RENEW", None),
    ("GRACE_PERIOD_EXPIRED", None),
    ("EXPIRED", "VOLUNTARY"),
    ("EXPIRED", "BILLING_RETRY"),
    ("EXPIRED", "PRICE_INCREASE"),
    ("EXPIRED", "PRODUCT_NOT_FOR_SALE"),
    ("EXPIRED", None),
    ("OFFER_REDEEMED", "INITIAL_BUY"),
    ("OFFER_REDEEMED", "RESUBSCRIBE"),
    ("OFFER_REDEEMED", "UPGRADE"),
    ("OFFER_REDEEMED", "DOWNGRADE"),
    ("OFFER_REDEEMED", None),
    ("PRICE_INCREASE", "PENDING"),
    ("PRICE_INCREASE", "ACCEPTED"),
    ("REFUND", None),
    ("REFUND_DECLINED", None),
    ("REFUND_REVERSED", None),
    ("REVOKE", None),
    ("CONSUMPTION_REQUEST", None),
    ("RENEWAL_EXTENDED", None),
    ("RENEWAL_EXTENSION", "FAILURE"),
    ("TEST", None),
    ("EXTERNAL_PURCHASE_TOKEN", "UNREPORTED"),
    ("ONE_TIME_CHARGE", None),
    ("RESCIND_CONSENT", None),
    ("METADATA_UPDATE", None),
    ("MIGRATION", None),
    ("PRICE_CHANGE", None),
]


@pytest.mark.parametrize(("kind", "subtype"), ALL_TYPES)
async def test_every_signed_type_and_subtype_is_verified_and_kept(
    client: httpx.AsyncClient, publisher: MemoryPublisher, kind: str, subtype: str | None
) -> None:
    status, _ = await post(client, {"signedPayload": notification(CA, kind, subtype)})
    assert status == 200
    ((_, _, value),) = publisher.records
    payload = RawNotification.model_validate_json(value).payload
    assert (payload["notificationType"], payload.get("subtype")) == (kind, subtype)
    assert payload["data"]["transaction"]["transactionId"] == "2000000002"


async def test_metrics_count_accepted_and_refused_notifications(client: httpx.AsyncClient) -> None:
    await post(client, {"signedPayload": notification(CA)})
    await post(client, b"{not json")
    text = (await client.get("/metrics/")).text
    assert 'subledger_ingress_accepted_total{store="app_store"}' in text
    assert 'subledger_ingress_rejected_total{code="malformed_json",store="app-store"}' in text
