"""Money: integer minor units plus an ISO 4217 currency, formatted per locale with Babel."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision

from carlink.i18n import BABEL_LOCALES


def minor_digits(currency: str) -> int:
    """2 for EUR, GBP and USD; 0 for JPY, which has no minor unit."""
    return int(get_currency_precision(currency))


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def format_money(amount_minor: int, currency: str, language: str = "en") -> str:
    locale = BABEL_LOCALES.get(language, "en_GB")
    return format_currency(to_decimal(amount_minor, currency), currency, locale=locale)
