"""Integration events: the Adapty-shaped envelope, and the JSON Schema shipped for it."""

from __future__ import annotations

from decimal import Decimal

import orjson
from jsonschema import Draft202012Validator

from processors.core.ledger import Ledger
from schemas.base import to_json
from schemas.enums import EventType
from schemas.integration import SCHEMA_FILE, json_schema
from tests.corpus import corpus, profile_id


def emitted() -> Ledger:
    creates, rest = corpus(12)
    ledger = Ledger()
    ledger.submit_all([*creates, *rest])
    return ledger


def test_the_shipped_schema_is_generated_from_the_contract() -> None:
    assert orjson.loads(SCHEMA_FILE.read_bytes()) == json_schema()


def test_every_emitted_event_matches_the_shipped_schema() -> None:
    validator = Draft202012Validator(orjson.loads(SCHEMA_FILE.read_bytes()))
    ledger = emitted()
    assert {e.event_type for e in ledger.published} >= {
        EventType.PROFILE_CREATED,
        EventType.TRIAL_STARTED,
        EventType.SUBSCRIPTION_REFUNDED,
        EventType.ACCESS_LEVEL_UPDATED,
    }
    for event in ledger.published:
        errors = list(validator.iter_errors(orjson.loads(to_json(event))))
        assert errors == [], (event.event_type, errors[:1])


def test_the_schema_refuses_an_event_missing_its_properties() -> None:
    validator = Draft202012Validator(orjson.loads(SCHEMA_FILE.read_bytes()))
    document = orjson.loads(to_json(emitted().published[0]))
    del document["event_properties"]
    assert not validator.is_valid(document)


def test_the_envelope_carries_the_profile_as_the_event_left_it() -> None:
    ledger = emitted()
    mine = [e for e in ledger.published if e.profile_id == profile_id(2)]
    refund = next(e for e in mine if e.event_type is EventType.SUBSCRIPTION_REFUNDED)
    purchase = next(e for e in mine if e.event_type is EventType.SUBSCRIPTION_STARTED)
    # Profile 2 bought for 19.00 and was refunded: the total is as of each event.
    assert purchase.event_properties.profile_total_revenue_usd == Decimal("19.00")
    assert refund.event_properties.profile_total_revenue_usd == 0
    assert refund.customer_user_id == "user-2"
    assert purchase.event_properties.price_usd == Decimal("19.00")
    assert purchase.event_properties.store is not None
    assert all(e.event_properties.profile_event_id == e.profile_event_id for e in mine)
