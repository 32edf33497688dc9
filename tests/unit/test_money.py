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


def test_usd_conversion_is_rounded_once_to_four_places_half_even() -> None:
    rates = Rates({"USD": Decimal(1), "JPY": Decimal("151.5"), "EUR": Decimal("0.8")})
    assert str(rates.to_usd(Decimal(1200), "JPY")) == "7.9208"
    assert str(rates.to_usd(Decimal("9.99"), "USD")) == "9.9900"
    # 0.00002 / 0.8 = 0.000025: half-even keeps the even digit.
    assert str(rates.to_usd(Decimal("0.00002"), "EUR")) == "0.0000"


def test_a_currency_without_a_rate_is_an_error() -> None:
    with pytest.raises(UnknownCurrencyError, match="XYZ"):
        Rates.load().to_usd(Decimal(1), "XYZ")
