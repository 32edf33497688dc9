"""Bad input refused at the edge: what the system cannot keep never gets in (DOMAIN.md 8)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api.errors import ApiError
from api.webhooks import refuse_private
from ingress.app import Ingress, create_app
from ingress.errors import IngressError
from ingress.google_play import decode_push
from ingress.stripe_webhook import StripeVerifier
from projections.projector import _storable
from runtime.catalog import load_catalog
from schemas.api import (
    AttributesRequest,
    GrantRequest,
    InstallationMetaBody,
    NoteRequest,
    ProfileFieldsBody,
    ProfileFilters,
    ProfileQuery,
    ProfileRequest,
    SegmentRequest,
    SetTransactionRequest,
)
from schemas.boundary import unkeepable
from schemas.profile import InstallationMeta, ProfileFields
from tests.unit.test_ingress_app_store import MemoryPublisher
from tests.unit.test_ingress_stripe import NEW, OLD, signed


def refused(model: Any, document: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return str(caught.value)


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (NoteRequest, {"text": "VIP\x00"}),
        (NoteRequest, {"text": "lone \ud800 surrogate"}),
        (ProfileQuery, {"q": "a\x00b"}),
        (ProfileQuery, {"access_level": "premium\x00"}),
        (ProfileQuery, {"country": ["D\x00"]}),
        (SegmentRequest, {"name": "vip\x00"}),
        (SegmentRequest, {"name": "vip", "filters": {"attributes": {"k\x00": "v"}}}),
    ],
)
def test_text_holding_nul_or_a_lone_surrogate_is_refused(model: Any, document: Any) -> None:
    assert "NUL" in refused(model, document) or "surrogate" in refused(model, document)


def test_numbers_beyond_what_the_columns_hold_are_refused() -> None:
    # As text, an amount is plain digits: no exponent, sign or spelled-out infinity.
    for text in ("1e1000000", "Infinity", "-1", "1000000001"):
        assert "decimal text" in refused(ProfileFilters, {"ltv_min": text})
    assert "less than or equal" in refused(ProfileFilters, {"ltv_max": 1e10})
    price = {"country": "US", "currency": "USD", "value": 1e308}
    body = {
        "purchase_type": "one_time_purchase",
        "store": "app_store",
        "store_product_id": "p",
        "store_transaction_id": "t",
        "store_original_transaction_id": "t",
        "price": price,
        "purchased_at": "2026-11-01T00:00:00Z",
    }
    assert "less than or equal" in refused(SetTransactionRequest, body)


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_instants_outside_the_supported_years_are_refused(year: str) -> None:
    assert "between 1970 and 2200" in refused(
        GrantRequest, {"access_level_id": "premium", "starts_at": f"{year}-01-01T00:00:00Z"}
    )


def test_odd_but_typed_values_are_refused() -> None:
    assert "expires_at must be later" in refused(
        GrantRequest,
        {
            "access_level_id": "premium",
            "starts_at": "2026-11-02T00:00:00Z",
            "expires_at": "2026-11-01T00:00:00Z",
        },
    )
    assert refused(ProfileFilters, {"attributes": {"k" * 10_000: "v"}})
    assert refused(NoteRequest, {"text": "x" * 5000})
    body = {
        "purchase_type": "subscription",
        "store": "app_store",
        "store_product_id": "p",
        "store_transaction_id": "t",
        "store_original_transaction_id": "t",
        "price": {"country": "US", "currency": "USD", "value": 1},
        "purchased_at": "2026-11-01T00:00:00Z",
        "renew_status": "yes",
    }
    assert "renew_status" in refused(SetTransactionRequest, body)


def test_documents_nested_too_deeply_are_refused() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert unkeepable(deep) == "the document is nested deeper than 16 levels"
    assert unkeepable({"a": [{"b": "fine"}]}) is None


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_is_either_keepable_or_refused_with_a_reason(text: str) -> None:
    problem = unkeepable(text)
    if problem is None:
        assert "\x00" not in text
        text.encode()
    else:
        assert "\x00" in text or "surrogate" in problem


def test_a_nul_that_got_past_the_boundaries_is_stored_as_a_replacement_character() -> None:
    assert _storable("a\x00b") == "a\ufffdb"
    assert _storable('{"note": "a\\u0000b"}') == '{"note": "a\\ufffdb"}'
    assert _storable(["x\x00"]) == ["x\ufffd"]
    assert _storable(5) == 5


# --- the HTTP edge -----------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Ingress(
            catalog=load_catalog(),
            publisher=MemoryPublisher(),
            stripe=StripeVerifier([OLD, NEW]),
            max_body_bytes=4096,
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as http:
        yield http


async def test_a_body_over_the_limit_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/stripe", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error_code"] == "request_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    streamed = await client.post("/webhooks/stripe", content=chunks())
    assert streamed.status_code == 413


def _stripe(data: object, **extra: object) -> bytes:
    return orjson.dumps(
        {"id": "evt_1", "type": "invoice.paid", "created": int(time.time()), "data": data, **extra}
    )


@pytest.mark.parametrize(
    "body",
    [
        _stripe("not an object"),
        _stripe({"object": ["a", "list"]}),
        _stripe({"object": {"id": "in_1", "description": "nul\x00"}}),
    ],
)
async def test_a_signed_stripe_event_without_stripes_shape_is_a_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": signed(body, NEW)}
    )
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400


def test_a_pubsub_push_whose_notification_is_not_an_object_is_refused() -> None:
    notification = {"packageName": "com.example", "subscriptionNotification": "oops"}
    envelope = {
        "message": {
            "messageId": "m1",
            "data": base64.b64encode(orjson.dumps(notification)).decode(),
        }
    }
    with pytest.raises(IngressError) as caught:
        decode_push(envelope, "com.example")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
    ],
)
async def test_a_webhook_endpoint_on_a_non_public_address_is_refused(url: str) -> None:
    with pytest.raises(ApiError) as caught:
        await refuse_private(url)
    assert (caught.value.status, caught.value.source) == (400, "url")


async def test_a_webhook_endpoint_on_a_public_address_is_allowed() -> None:
    await refuse_private("https://93.184.215.14/hook")


@pytest.mark.parametrize("value", ["0.5", "1700000000", 1700000000, 0.5])
def test_an_instant_is_iso_text_not_a_unix_timestamp(value: object) -> None:
    assert "RFC 3339" in refused(ProfileFilters, {"last_seen_to": value})


@pytest.mark.parametrize(
    "text", ["2026-12-01", "2026-12-01T10:00Z", "2026-12-01 10:00:00Z", "2026-12-01T10:00:00"]
)
def test_an_instant_is_written_with_seconds_and_an_offset(text: str) -> None:
    assert "RFC 3339" in refused(ProfileFilters, {"last_seen_to": text})


def test_an_amount_or_an_attribute_that_spells_a_number_keeps_its_type() -> None:
    # A text too long for an attribute must not pass as the number it spells.
    assert refused(AttributesRequest, {"custom_attributes": [{"key": "k", "value": "0" * 51}]})
    assert refused(ProfileRequest, {"installation_meta": {"device_id": "d"}, "att_status": True})
    assert refused(ProfileRequest, {"installation_meta": {"device_id": "d"}, "birthday": 0})


def test_the_boundary_bodies_name_the_fields_the_fold_keeps() -> None:
    """The HTTP bodies (pydantic) and the fold's records (msgspec) describe the same
    profile fields twice, one per layer: they must not drift apart."""

    for body, record in (
        (InstallationMetaBody, InstallationMeta),
        (ProfileFieldsBody, ProfileFields),
    ):
        assert set(body.model_fields) == {f.name for f in msgspec.structs.fields(record)}
