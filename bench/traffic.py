"""Synthetic store traffic for benchmarks: monthly renewals spread over many profiles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from schemas.enums import EventType, Store
from schemas.events import ProfileRef, RenewalInfo, StoreEvent, TransactionInfo

# In the future, so that no timer falls due while the benchmark runs.
START = datetime(2027, 1, 1, tzinfo=UTC)


def profile_id(i: int) -> UUID:
    return UUID(int=0xBE4C << 112 | i)


def renewals(events: int, profiles: int) -> Iterator[StoreEvent]:
    """`events` store events, round-robin over `profiles` chains: each profile renews monthly.

    Round-robin is the hard case for a stream processor: consecutive events rarely share a
    key, so batching cannot coalesce them.
    """
    month = timedelta(days=30)
    price = Decimal("9.99")
    for n in range(events):
        i, k = n % profiles, n // profiles
        start = START + k * month + timedelta(seconds=i % 86_400)
        otid = f"bench-{i}"
        tx = TransactionInfo(
            transaction_id=f"{otid}-{k}",
            original_transaction_id=otid,
            product_id="premium.monthly",
            purchased_at=start,
            expires_at=start + month,
            price_local=price,
            price_usd=price,
        )
        yield StoreEvent(
            event_id=f"evt-{otid}-{k}",
            event_type=EventType.SUBSCRIPTION_STARTED if k == 0 else EventType.SUBSCRIPTION_RENEWED,
            store=Store.APP_STORE,
            original_transaction_id=otid,
            transaction_id=tx.transaction_id,
            product_id=tx.product_id,
            effective_at=start,
            signed_at=start,
            received_at=start,
            profile=ProfileRef(profile_id=profile_id(i)),
            transaction=tx,
            renewal=RenewalInfo(),
        )
