"""Store prices to exact money: local amounts in each store's unit, USD through a rates table."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

from schemas.money import rounded

# Stripe amounts are in the currency's smallest unit, except for these, which have none.
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)


class UnknownCurrencyError(ValueError):
    """A price in a currency the rates table does not have."""


class Rates:
    """Units of each currency per US dollar."""

    def __init__(self, per_usd: dict[str, Decimal]) -> None:
        self._per_usd = per_usd

    @classmethod
    def load(cls, path: Path | None = None) -> Rates:
        text = (
            path.read_text()
            if path
            else (resources.files("processors.normalize").joinpath("rates.json").read_text())
        )
        table = json.loads(text)
        return cls({k: Decimal(v) for k, v in table.items() if not k.startswith("_")})

    def to_usd(self, amount: Decimal, currency: str) -> Decimal:
        rate = self._per_usd.get(currency)
        if rate is None:
            raise UnknownCurrencyError(f"no USD rate for {currency}")
        # Rounded once, here, to 4 places (DOMAIN.md 6): totals are sums of these.
        return rounded(amount / rate)


def from_milliunits(value: int) -> Decimal:
    """Apple: 10990 is 10.99."""
    return Decimal(value) / 1000


def from_micros(value: int | str) -> Decimal:
    """Google: 1,000,000 micros are one unit."""
    return Decimal(int(value)) / 1_000_000


def from_minor_units(value: int, currency: str) -> Decimal:
    """Stripe: cents, except in zero-decimal currencies."""
    if currency.upper() in ZERO_DECIMAL:
        return Decimal(value)
    return Decimal(value) / 100
