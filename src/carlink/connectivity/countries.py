"""What a car's data connection can do in each country (CON-2, CON-5, CON-6).

Invented but plausible figures for the countries carlink serves; a deployment replaces them with its
partners' real coverage. A country missing here is one we know nothing about: the guide says so instead of
guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from babel import Locale

from carlink import i18n
from carlink.errors import CarlinkError
from carlink.i18n import _

_CODE = re.compile(r"[A-Za-z]{2}")


class TrafficCoverage(StrEnum):
    FULL = "full"  # motorways, main roads and the larger cities
    PARTIAL = "partial"  # motorways and main roads
    NONE = "none"  # no real-time traffic offered yet


@dataclass(frozen=True)
class CountryConnectivity:
    code: str
    roaming: bool  # a car from another country can roam on a partner network here (CON-2)
    traffic: TrafficCoverage  # real-time traffic from the local content partner (CON-5, CON-6)
    esim_plan: bool  # a data plan for the built-in eSIM is sold here (CON-1)


_F, _P, _N = TrafficCoverage.FULL, TrafficCoverage.PARTIAL, TrafficCoverage.NONE

COUNTRIES: dict[str, CountryConnectivity] = {
    c.code: c
    for c in (
        # Europe
        CountryConnectivity("DE", True, _F, True),
        CountryConnectivity("AT", True, _F, True),
        CountryConnectivity("CH", True, _F, True),
        CountryConnectivity("NL", True, _F, True),
        CountryConnectivity("BE", True, _F, True),
        CountryConnectivity("LU", True, _P, True),
        CountryConnectivity("FR", True, _F, True),
        CountryConnectivity("IT", True, _P, True),
        CountryConnectivity("ES", True, _P, True),
        CountryConnectivity("PT", True, _P, False),
        CountryConnectivity("GB", True, _F, True),
        CountryConnectivity("IE", True, _P, False),
        CountryConnectivity("DK", True, _F, True),
        CountryConnectivity("SE", True, _F, True),
        CountryConnectivity("NO", True, _P, True),
        CountryConnectivity("FI", True, _P, False),
        CountryConnectivity("PL", True, _P, False),
        CountryConnectivity("CZ", True, _P, False),
        CountryConnectivity("HU", True, _P, False),
        CountryConnectivity("SI", True, _P, False),
        CountryConnectivity("HR", True, _N, False),
        CountryConnectivity("GR", True, _P, False),
        CountryConnectivity("TR", False, _P, False),
        # Asia and Pacific
        CountryConnectivity("JP", True, _F, True),
        CountryConnectivity("KR", False, _P, False),
        CountryConnectivity("TW", True, _P, False),
        CountryConnectivity("SG", True, _F, False),
        CountryConnectivity("HK", True, _P, False),
        CountryConnectivity("AU", True, _P, True),
        CountryConnectivity("NZ", True, _P, False),
        # Americas
        CountryConnectivity("US", True, _F, True),
        CountryConnectivity("CA", True, _P, True),
        CountryConnectivity("MX", False, _N, False),
        CountryConnectivity("BR", False, _N, False),
        # Middle East and Africa
        CountryConnectivity("AE", True, _P, False),
        CountryConnectivity("ZA", False, _N, False),
    )
}


# Every two-letter territory code CLDR knows (ISO 3166-1 alpha-2; "ZZ" is CLDR's "unknown region").
ISO_COUNTRIES = frozenset(
    code for code in map(str, Locale("en").territories) if len(code) == 2 and code.isalpha() and code != "ZZ"
)


def checked_country(raw: str) -> str:
    """An ISO 3166 alpha-2 code as typed in an address (``fr`` is ``FR``); anything else is refused."""
    raw = raw.strip()
    if not _CODE.fullmatch(raw) or raw.upper() not in ISO_COUNTRIES:
        raise CarlinkError(
            "%(country)s is not a country code; use two letters such as FR",
            code="invalid_country",
            country=raw[:8],
        )
    return raw.upper()


def country_connectivity(code: str) -> CountryConnectivity | None:
    return COUNTRIES.get(code.upper())


def country_name(code: str) -> str:
    """The country's name in the current language (Babel's CLDR data), the code itself if it has none."""
    name: str | None = Locale.parse(i18n.babel_locale()).territories.get(code.upper())
    return name or code.upper()


def country_choices(*also: str) -> list[tuple[str, str]]:
    """(code, name) of every country in the table plus the codes in `also` that it lacks (a person's home
    country we have no data for yet, so that the chooser can still show it as chosen), sorted by name."""
    choices = {code: country_name(code) for code in COUNTRIES}
    for code in also:
        code = code.upper()
        if code not in choices:
            choices[code] = _("%(country)s (no data yet)", country=country_name(code))
    return sorted(choices.items(), key=lambda pair: _collation_key(pair[0], pair[1]))


# The readings of the Japanese country names CLDR writes in kanji, so that Japanese sorts them in gojūon
# order with the katakana names (日本 under に, not after every katakana name). A test checks that every
# Japanese name of the table starts with kana or has a reading here.
JA_READINGS = {
    "JP": "にほん",
    "KR": "かんこく",
    "TW": "たいわん",
    "HK": "ちゅうかじんみんきょうわこくほんこんとくべつぎょうせいく",
    "ZA": "みなみあふりか",
    "CN": "ちゅうごく",
}
_HIRAGANA = range(0x3041, 0x3097)
_KATAKANA_OFFSET = 0x60


def _collation_key(code: str, name: str) -> str:
    """A sort key close to each language's dictionary order without ICU: accents and case folded (de:
    Österreich under O, Südafrika under S), and in Japanese the kana reading with hiragana as katakana and
    voiced marks folded (ガ with カ): close to gojūon order."""
    if i18n.current() == "ja":
        name = JA_READINGS.get(code.upper(), name)
        name = "".join(chr(ord(c) + _KATAKANA_OFFSET) if ord(c) in _HIRAGANA else c for c in name)
        # The long-vowel mark lengthens the kana before it: オーストリア comes before オランダ.
        name = name.replace("ー", "\u3000")
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
