"""Set-transaction bodies: every validation rule of facts 1.8.3/1.8.5, before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from api.errors import ApiError, from_validation
from api.server_side import to_set_transaction
from processors.normalize.money import Rates
from schemas.api import SetTransactionRequest
from schemas.enums import CancellationReason

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "purchase_type": "subscription",
        "store": "app_store",
        "environment": "Production",
        "store_product_id": "premium.monthly",
        "store_transaction_id": "t-2",
        "store_original_transaction_id": "t-1",
        "price": {"country": "US", "currency": "EUR", "value": 9.99},
        "purchased_at": "2026-05-01T00:00:00Z",
        "originally_purchased_at": "2026-04-01T00:00:00Z",
        "expires_at": "2026-06-01T00:00:00Z",
        "renew_status": True,
    }
    return {**base, **changes}


def command(document: dict[str, Any]) -> Any:
    request = SetTransactionRequest.model_validate(document)
    return to_set_transaction(request, uuid4(), "cmd-1", NOW, Rates.load())


def refusal(document: dict[str, Any]) -> tuple[str, str | None]:
    try:
        command(document)
    except ValidationError as error:
        problem = from_validation(error)
        return problem.code, problem.source
    except ApiError as problem:
        return problem.code, problem.source
    raise AssertionError("accepted")


def test_a_valid_subscription_becomes_one_set_transaction_command() -> None:
    made = command(body())
    tx = made.transaction
    assert (tx.transaction_id, tx.original_transaction_id) == ("t-2", "t-1")
    assert tx.price_local == Decimal("9.99")
    assert tx.currency == "EUR"
    assert tx.price_usd == Rates.load().to_usd(Decimal("9.99"), "EUR")
    assert made.renewal is not None
    assert made.renewal.auto_renew


def test_a_refund_carries_its_reason() -> None:
    made = command(body(refunded_at="2026-05-02T00:00:00Z", cancellation_reason="refund"))
    assert made.transaction.revocation_reason is CancellationReason.REFUND
    assert made.renewal.cancellation_reason is None


@pytest.mark.parametrize(
    ("changes", "code", "source"),
    [
        ({"expires_at": None}, "base_error", "expires_at"),
        ({"renew_status": None}, "base_error", "renew_status"),
        ({"originally_purchased_at": None}, "base_error", "originally_purchased_at"),
        ({"expires_at": "2026-04-30T00:00:00Z"}, "expires_date_error", "expires_at"),
        (
            {"renew_status_changed_at": "2026-04-30T00:00:00Z"},
            "renew_status_changed_date_error",
            "renew_status_changed_at",
        ),
        (
            {"billing_issue_detected_at": "2026-04-30T00:00:00Z"},
            "billing_issue_detected_at_date_comparison_error",
            "billing_issue_detected_at",
        ),
        (
            {"grace_period_expires_at": "2026-06-05T00:00:00Z"},
            "grace_period_billing_error",
            "grace_period_billing_error",
        ),
        (
            {"originally_purchased_at": "2026-05-02T00:00:00Z"},
            "originally_purchased_date_error",
            "originally_purchased_at",
        ),
        (
            {"offer": {"category": "promotional", "type": "pay_up_front"}},
            "missing_offer_id",
            "offer.category",
        ),
        (
            {"offer": {"category": "introductory", "type": "free_trial"}},
            "free_trial_price_error",
            "offer.type",
        ),
        ({"is_family_shared": True}, "family_share_price_error", "is_family_shared"),
        ({"refunded_at": "2026-05-02T00:00:00Z"}, "refund_fields_error", "refunded_at"),
        ({"cancellation_reason": "refund"}, "refund_fields_error", "refunded_at"),
        (
            {"refunded_at": "2026-04-02T00:00:00Z", "cancellation_reason": "refund"},
            "refund_date_error",
            "refunded_at",
        ),
        (
            {"purchase_type": "one_time_purchase", "store_transaction_id": "x"},
            "store_transaction_id_error",
            "store_transaction_id",
        ),
        ({"store_transaction_id": "t" * 51}, "validation_error", "store_transaction_id"),
        ({"store": "amazon"}, "enum", "store"),
        ({"purchase_type": "gift"}, "enum", "purchase_type"),
        ({"purchased_at": "yesterday"}, "datetime", "purchased_at"),
        ({"purchased_at": "2026-05-01T00:00:00"}, "datetime", "purchased_at"),
        ({"price": {"country": "US", "currency": "EUR"}}, "base_error", "price.value"),
        (
            {"price": {"country": "US", "currency": "XXX", "value": 1}},
            "validation_error",
            "price.currency",
        ),
        ({"surprise": 1}, "validation_error", "surprise"),
    ],
)
def test_each_rule_refuses_with_adaptys_code(
    changes: dict[str, Any], code: str, source: str
) -> None:
    assert refusal(body(**changes)) == (code, source)
