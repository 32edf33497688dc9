"""Exact money. Amounts are Decimal end to end; floats are refused."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

import msgspec

# Decoded from a JSON string or number without passing through a double, and encoded as
# a string, so that JSON consumers never round it either.
Amount = Decimal

CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]

ZERO = Decimal(0)
CENT = Decimal("0.01")
BASIS_POINT = Decimal("0.0001")


def rounded(amount: Decimal) -> Decimal:
    """A converted amount, rounded once, per transaction, at conversion (DOMAIN.md 6)."""
    return amount.quantize(BASIS_POINT, rounding=ROUND_HALF_EVEN)


def shown_price(amount: Decimal) -> Decimal:
    """Revenue and prices as the API renders them: exactly 2 decimals."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def shown_proceeds(amount: Decimal) -> Decimal:
    """Proceeds as the API renders them: exactly 4 decimals."""
    return amount.quantize(BASIS_POINT, rounding=ROUND_HALF_EVEN)


def exact(name: str, value: object) -> None:
    """Money built in code must be a Decimal: a float has already lost exactness."""
    if not isinstance(value, Decimal):
        raise ValueError(f"{name} must be a Decimal, not {type(value).__name__}")
