"""Exact money. Amounts are Decimal end to end; floats are refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, StringConstraints


def _no_float(value: object) -> object:
    # A float has already lost exactness; accept only what converts exactly.
    if isinstance(value, float):
        raise ValueError("money must be a string, integer or Decimal, never a float")
    return value


# Serialised as a string so that JSON consumers never round it through a double.
Amount = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]

ZERO = Decimal(0)
