"""Exact money. Amounts are Decimal end to end; floats are refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

# Decoded from a JSON string or number without passing through a double, and encoded as
# a string, so that JSON consumers never round it either.
Amount = Decimal

CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]

ZERO = Decimal(0)


def exact(name: str, value: object) -> None:
    """Money built in code must be a Decimal: a float has already lost exactness."""
    if not isinstance(value, Decimal):
        raise ValueError(f"{name} must be a Decimal, not {type(value).__name__}")
