"""What the store does per country: its currency and the card brands accepted there (STO-5)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CardBrand(StrEnum):
    VISA = "VISA"
    MASTERCARD = "MASTERCARD"
    JCB = "JCB"
    DINERS = "DINERS"
    AMEX = "AMEX"  # recognised so the person hears "not accepted here", never accepted


BRAND_NAMES = {
    CardBrand.VISA: "VISA",
    CardBrand.MASTERCARD: "Mastercard",
    CardBrand.JCB: "JCB",
    CardBrand.DINERS: "Diners Club",
    CardBrand.AMEX: "American Express",
}


@dataclass(frozen=True)
class StoreCountry:
    code: str
    currency: str
    brands: tuple[CardBrand, ...]


_EU_BRANDS = (CardBrand.VISA, CardBrand.MASTERCARD)
STORE_COUNTRIES = {
    c.code: c
    for c in (
        StoreCountry("JP", "JPY", (CardBrand.VISA, CardBrand.MASTERCARD, CardBrand.JCB, CardBrand.DINERS)),
        StoreCountry("DE", "EUR", _EU_BRANDS),
        StoreCountry("AT", "EUR", _EU_BRANDS),
        StoreCountry("NL", "EUR", _EU_BRANDS),
        StoreCountry("CH", "CHF", _EU_BRANDS),
        StoreCountry("GB", "GBP", _EU_BRANDS),
        StoreCountry("US", "USD", (CardBrand.VISA, CardBrand.MASTERCARD, CardBrand.DINERS)),
    )
}


def store_country(code: str) -> StoreCountry | None:
    return STORE_COUNTRIES.get(code.upper())
