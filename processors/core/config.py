"""The app's rules the fold needs: access levels, products, commission, sharing policy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from schemas.base import Record
from schemas.enums import SharingPolicy


class FoldConfig(Record, frozen=True, kw_only=True):
    sharing_policy: SharingPolicy = SharingPolicy.SHARED
    access_levels: frozenset[str] = frozenset({"premium"})
    default_access_level: str = "premium"
    # Products that unlock other levels than the default; an empty tuple unlocks none.
    product_access_levels: dict[str, tuple[str, ...]] = {}
    commission_rate: Decimal = Decimal("0.30")
    reduced_commission_rate: Decimal = Decimal("0.15")
    # Stripe keeps no store commission: only the payment fee the app says it pays.
    stripe_fee_rate: Decimal = Decimal(0)
    # Small-business programme: the reduced rate on every transaction.
    small_business: bool = False
    # Paid service after which a chain's renewals earn the reduced rate.
    reduced_rate_after: timedelta = timedelta(days=365)
    # How long a period that ends with auto-renew on stays active awaiting its renewal
    # (DOMAIN.md 3, "Renewal leeway"), counted from its expiry and from when it was learned.
    renewal_leeway: timedelta = timedelta(hours=1)
    email_attribution_window: timedelta = timedelta(days=7)
    max_custom_attributes: int = 30
    max_notes: int = 10
    max_note_length: int = 255

    def levels_of(self, product_id: str) -> tuple[str, ...]:
        return self.product_access_levels.get(product_id, (self.default_access_level,))


DEFAULT_CONFIG = FoldConfig()
