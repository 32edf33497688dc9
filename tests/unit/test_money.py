"""Store prices to exact money (DOMAIN.md 6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.normalize.money import (
    Rates,
    UnknownCurrencyError,
    from_micros,
    from_milliunits,
    from_minor_units,
)


def test_apple_milliunits_google_micros_stripe_minor_units() -> None:
    assert from_milliunits(10990) == Decimal("10.99")
    assert from_micros("4990000") == Decimal("4.99")
    assert from_minor_units(999, "usd") == Decimal("9.99")


@pytest.mark.parametrize("currency", ["JPY", "KRW", "VND", "CLP"])
def test_zero_decimal_currencies_have_no_minor_unit(currency: str) -> None:
    assert from_minor_units(1200, currency) == Decimal(1200)


def test_usd_conversion_is_exact_to_the_micro_dollar() -> None:
    rates = Rates({"USD": Decimal(1), "JPY": Decimal("151.5")})
    assert rates.to_usd(Decimal(1200), "JPY") == Decimal("7.920792")
    assert rates.to_usd(Decimal("9.99"), "USD") == Decimal("9.99")


def test_a_currency_without_a_rate_is_an_error() -> None:
    with pytest.raises(UnknownCurrencyError, match="XYZ"):
        Rates.load().to_usd(Decimal(1), "XYZ")
