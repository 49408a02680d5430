"""Card checks that need no payment provider: brand from the number, Luhn, expiry (STO-5)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from carlink.catalog.countries import CardBrand
from carlink.errors import CarlinkError
from carlink.i18n import N_

_DIGITS = re.compile(r"^[0-9]{12,19}$")


def card_error(message: str, code: str, **values: Any) -> CarlinkError:
    # The messages are marked with N_ where they are written (tools/catalogs.py extracts them there).
    return CarlinkError(message, code=code, status=422, **values)


def clean_number(raw: str) -> str:
    number = re.sub(r"[\s-]", "", raw)
    if not _DIGITS.match(number):
        raise card_error(N_("A card number has 12 to 19 digits."), "card_number_invalid")
    if not luhn_ok(number):
        raise card_error(N_("This card number is not valid. Please check it."), "card_number_invalid")
    return number


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def detect_brand(number: str) -> CardBrand | None:
    """The brand from the issuer prefix (IIN ranges as the schemes publish them)."""
    two, four = int(number[:2]), int(number[:4])
    if number.startswith("4"):
        return CardBrand.VISA
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return CardBrand.MASTERCARD
    if 3528 <= four <= 3589:
        return CardBrand.JCB
    if two in (36, 38, 39) or 300 <= int(number[:3]) <= 305:
        return CardBrand.DINERS
    if two in (34, 37):
        return CardBrand.AMEX
    return None


def check_expiry(month: int, year: int, today: dt.date) -> None:
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise card_error(N_("The expiry date is not a valid month and year."), "card_expiry_invalid")
    if (year, month) < (today.year, today.month):
        raise card_error(N_("This card has expired."), "card_expired")


def check_accepted(brand: CardBrand | None, accepted: tuple[CardBrand, ...], country: str) -> CardBrand:
    if brand is None or brand not in accepted:
        names = ", ".join(b.value for b in accepted)
        raise card_error(
            N_("This card brand is not accepted in %(country)s. Accepted here: %(brands)s."),
            "card_brand_not_accepted",
            country=country,
            brands=names,
        )
    return brand
