"""Command checks that need no state beyond the profile: each returns errors as values.

An error is (error_code, source, message), the parts of the DOMAIN.md section 8 body.
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.core.config import FoldConfig
from schemas.commands import SetTransaction
from schemas.enums import CancellationReason, OfferType
from schemas.profile import (
    AttributeValue,
    CustomAttribute,
    attribute_key_error,
    attribute_text_error,
)

Error = tuple[str, str, str]


def apply_attributes(
    current: dict[str, AttributeValue], changes: Iterable[CustomAttribute], config: FoldConfig
) -> dict[str, AttributeValue] | Error:
    """The attributes after `changes`, or the first error; `None` removes a key."""
    result = dict(current)
    for attribute in changes:
        problem = attribute_key_error(attribute.key)
        value = attribute.value
        if problem is None and isinstance(value, str):
            problem = attribute_text_error(attribute.key, value)
        if problem is not None:
            return ("validation_error", "custom_attributes", problem)
        if value is None:
            result.pop(attribute.key, None)
        else:
            result[attribute.key] = value
    if len(result) > config.max_custom_attributes:
        return (
            "validation_error",
            "custom_attributes",
            f"a profile has at most {config.max_custom_attributes} custom attributes",
        )
    return result


def note_text_error(text: str, config: FoldConfig) -> Error | None:
    if not text.strip():
        return ("validation_error", "text", "a note needs text")
    if len(text) > config.max_note_length:
        return (
            "validation_error",
            "text",
            f"a note is at most {config.max_note_length} characters",
        )
    return None


def transaction_error(command: SetTransaction) -> Error | None:
    """The set-transaction rules of the server-side API (facts 1.8.3, 1.8.5)."""
    tx, renewal = command.transaction, command.renewal
    if tx.originally_purchased_at is not None and tx.originally_purchased_at > tx.purchased_at:
        return (
            "originally_purchased_date_error",
            "originally_purchased_at",
            "originally_purchased_at must not be later than purchased_at",
        )
    if not tx.is_subscription and tx.transaction_id != tx.original_transaction_id:
        return (
            "store_transaction_id_error",
            "store_transaction_id",
            "a one-time purchase's store_transaction_id must equal store_original_transaction_id",
        )
    if tx.offer is not None and tx.offer.type is OfferType.FREE_TRIAL and tx.price_local != 0:
        return ("free_trial_price_error", "offer.type", "a free trial's price must be 0")
    if tx.is_family_shared and tx.price_local != 0:
        return ("family_share_price_error", "is_family_shared", "a family-shared price must be 0")
    if (tx.revoked_at is None) != (tx.revocation_reason is not CancellationReason.REFUND):
        return (
            "refund_fields_error",
            "refunded_at",
            "refunded_at and cancellation_reason=refund must come together",
        )
    if tx.revoked_at is not None and tx.revoked_at <= tx.purchased_at:
        return ("refund_date_error", "refunded_at", "refunded_at must be later than purchased_at")
    if renewal is None:
        return None
    detected = renewal.billing_issue_detected_at
    if detected is not None and detected <= tx.purchased_at:
        return (
            "billing_issue_detected_at_date_comparison_error",
            "billing_issue_detected_at",
            "billing_issue_detected_at must be later than purchased_at",
        )
    if renewal.grace_period_expires_at is not None and detected is None:
        return (
            "grace_period_billing_error",
            "grace_period_billing_error",
            "grace_period_expires_at requires billing_issue_detected_at",
        )
    return None
