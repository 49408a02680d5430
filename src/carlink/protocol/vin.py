"""Vehicle identification numbers (ISO 3779)."""

from __future__ import annotations

import re

_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


class InvalidVin(ValueError):
    """Not a 17-character VIN."""


def check_digit(vin: str) -> str:
    """The North-American check digit (position 9); Europe leaves it free, so we only check it there."""
    total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def normalise_vin(raw: str) -> str:
    vin = raw.strip().upper()
    if not _VIN.match(vin):
        raise InvalidVin("a VIN has 17 characters: digits and capital letters except I, O and Q")
    return vin


def is_valid_vin(raw: str) -> bool:
    try:
        normalise_vin(raw)
    except InvalidVin:
        return False
    return True


def make_vin(wmi: str, descriptor: str, year_code: str, plant: str, serial: int) -> str:
    """Builds a VIN with a correct check digit, e.g. make_vin("WP0", "ZZZY1", "P", "S", 1)."""
    body = f"{wmi}{descriptor}0{year_code}{plant}{serial:06d}"
    if len(body) != 17:
        raise InvalidVin(f"parts make {len(body)} characters, not 17")
    vin = body[:8] + check_digit(body) + body[9:]
    return normalise_vin(vin)
