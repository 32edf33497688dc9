"""POST /webhooks/google-play: authenticated pushes are kept with the purchase's state."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt

from ingress.app import GooglePlay, Ingress, create_app
from ingress.google_play import OidcAuth, SharedSecretAuth
from runtime.catalog import load_catalog
from schemas.raw import RawNotification
from tests.unit.test_ingress_app_store import MemoryPublisher

PACKAGE = "com.example.subledger"
SECRET = "s3cret"
AUDIENCE = "https://subledger.example/webhooks/google-play"
ACCOUNT = "push@example.iam.gserviceaccount.com"


class RecordedPlayClient:
    """A fake Play Developer API serving recorded responses; or failing, like an outage."""

    def __init__(self, subscriptions: dict[str, dict[str, Any]]) -> None:
        self.subscriptions = subscriptions
        self.down = False

    def subscription(self, package: str, token: str) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("androidpublisher unreachable")
        return self.subscriptions[token]

    def product(self, package: str, token: str) -> dict[str, Any]:
        return {"orderId": "GPA.one-time", "purchaseStateContext": {"purchaseState": "PURCHASED"}}


def signing_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test google signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = signing_key()


def oidc_token(**changes: Any) -> str:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    signer = crypt.RSASigner.from_string(pem, key_id="k1")
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
        **changes,
    }
    return google_jwt.encode(signer, claims).decode()


def push(notification: dict[str, Any], message_id: str = "m-1") -> bytes:
    data = base64.b64encode(orjson.dumps(notification)).decode()
    return orjson.dumps(
        {
            "message": {
                "data": data,
                "messageId": message_id,
                "publishTime": "2026-04-01T00:00:00Z",
            },
            "subscription": "projects/p/subscriptions/s",
        }
    )


def subscription_notification(kind: int = 4, token: str = "tok-2") -> dict[str, Any]:
    return {
        "version": "1.0",
        "packageName": PACKAGE,
        "eventTimeMillis": "1775000000000",
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": kind,
            "purchaseToken": token,
        },
    }


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def play() -> RecordedPlayClient:
    return RecordedPlayClient(
        {
            "tok-1": {"subscriptionState": "SUBSCRIPTION_STATE_ACTIVE", "lineItems": []},
            "tok-2": {
                "subscriptionState": "SUBSCRIPTION_STATE_ACTIVE",
                "linkedPurchaseToken": "tok-1",
                "lineItems": [
                    {"productId": "premium.monthly", "expiryTime": "2026-05-01T00:00:00Z"}
                ],
            },
        }
    )


async def client_for(
    auth: Any, publisher: MemoryPublisher, play: RecordedPlayClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Ingress(catalog=load_catalog(), publisher=publisher, google=GooglePlay(PACKAGE, auth, play))
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as http:
        yield http


@pytest.fixture
async def client(
    publisher: MemoryPublisher, play: RecordedPlayClient
) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(SharedSecretAuth(SECRET), publisher, play):
        yield http


@pytest.fixture
async def oidc_client(
    publisher: MemoryPublisher, play: RecordedPlayClient
) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(
        OidcAuth(AUDIENCE, ACCOUNT, lambda: {"k1": CERT}), publisher, play
    ):
        yield http


URL = f"/webhooks/google-play?token={SECRET}"


async def test_a_notification_is_kept_with_its_fetched_state_keyed_by_lineage(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    response = await client.post(URL, content=push(subscription_notification()))
    assert response.status_code == 200
    ((topic, key, value),) = publisher.records
    # tok-2 replaced tok-1 (linkedPurchaseToken): one chain.
    assert (topic, key) == ("store.play_store.notifications", b"play_store:tok-1")
    raw = RawNotification.model_validate_json(value)
    assert raw.dedupe_key == "m-1"
    assert raw.payload["notification"]["subscriptionNotification"]["notificationType"] == 4
    assert raw.fetched == {
        "subscription": {
            "subscriptionState": "SUBSCRIPTION_STATE_ACTIVE",
            "linkedPurchaseToken": "tok-1",
            "lineItems": [{"productId": "premium.monthly", "expiryTime": "2026-05-01T00:00:00Z"}],
        }
    }


async def test_voided_and_test_notifications_are_kept_without_a_fetch(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    voided = {
        "packageName": PACKAGE,
        "eventTimeMillis": "1",
        "voidedPurchaseNotification": {
            "purchaseToken": "tok-9",
            "orderId": "GPA.1",
            "productType": 1,
            "refundType": 1,
        },
    }
    test = {"packageName": PACKAGE, "eventTimeMillis": "1", "testNotification": {"version": "1.0"}}
    for i, notification in enumerate((voided, test)):
        response = await client.post(URL, content=push(notification, f"m-{i}"))
        assert response.status_code == 200
    assert [RawNotification.model_validate_json(v).fetched for _, _, v in publisher.records] == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("body", "code", "source"),
    [
        pytest.param(b"nope", "malformed_json", "non_field_errors", id="not JSON"),
        pytest.param(
            orjson.dumps({"message": {"messageId": "m", "data": "***"}}),
            "validation_error",
            "message.data",
            id="bad base64",
        ),
        pytest.param(
            orjson.dumps({"message": {"data": "e30="}}),
            "validation_error",
            "message.messageId",
            id="no message id",
        ),
        pytest.param(
            push({**subscription_notification(), "packageName": "com.other"}),
            "invalid_package",
            "packageName",
            id="another app",
        ),
    ],
)
async def test_bad_pushes_are_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher, body: bytes, code: str, source: str
) -> None:
    response = await client.post(URL, content=body)
    assert response.status_code == 400
    assert (response.json()["error_code"], response.json()["errors"][0]["source"]) == (code, source)
    assert publisher.records == []


async def test_a_wrong_shared_secret_is_refused(
    client: httpx.AsyncClient, publisher: MemoryPublisher
) -> None:
    response = await client.post(
        "/webhooks/google-play?token=guess", content=push(subscription_notification())
    )
    assert (response.status_code, response.json()["error_code"]) == (401, "not_authenticated")
    assert publisher.records == []


async def test_a_valid_oidc_token_is_accepted(oidc_client: httpx.AsyncClient) -> None:
    response = await oidc_client.post(
        "/webhooks/google-play",
        content=push(subscription_notification()),
        headers={"Authorization": f"Bearer {oidc_token()}"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(oidc_token(aud="https://elsewhere"), id="another audience"),
        pytest.param(oidc_token(email="someone@example.com"), id="another account"),
        pytest.param(oidc_token(iss="https://evil.example"), id="another issuer"),
        pytest.param(
            oidc_token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), id="expired"
        ),
        pytest.param("not.a.token", id="garbage"),
    ],
)
async def test_bad_oidc_tokens_are_refused(
    oidc_client: httpx.AsyncClient, publisher: MemoryPublisher, token: str
) -> None:
    response = await oidc_client.post(
        "/webhooks/google-play",
        content=push(subscription_notification()),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert publisher.records == []


async def test_an_unreachable_play_api_answers_503_so_pubsub_retries(
    client: httpx.AsyncClient, publisher: MemoryPublisher, play: RecordedPlayClient
) -> None:
    play.down = True
    response = await client.post(URL, content=push(subscription_notification()))
    assert (response.status_code, response.json()["error_code"]) == (503, "store_api_unavailable")
    assert publisher.records == []
