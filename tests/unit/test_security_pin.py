"""The security-PIN answer (RMT-1 unlock): SHA-512 over the bytes of hex(pin + challenge), as the
maker's app API computes it (reference/porsche-connect-wire-api.md)."""

from __future__ import annotations

import hashlib

from carlink.remote.service import spin_hash

CHALLENGE = "D951A4D79D90EFE70C9F75A100632D75"


def test_the_wire_reference_example_hashes_to_the_published_value() -> None:
    answer = spin_hash("1234", CHALLENGE)
    assert answer.startswith("B693110528DA9350")
    assert len(answer) == 128 and answer == answer.upper()


def test_the_hash_is_over_the_bytes_the_hex_digits_stand_for() -> None:
    expected = hashlib.sha512(bytes.fromhex("1234" + CHALLENGE)).hexdigest().upper()
    assert spin_hash("1234", CHALLENGE) == expected
    assert spin_hash("1234", CHALLENGE.lower()) == expected


def test_another_pin_or_another_challenge_gives_another_answer() -> None:
    assert spin_hash("1235", CHALLENGE) != spin_hash("1234", CHALLENGE)
    assert spin_hash("1234", "00" * 16) != spin_hash("1234", CHALLENGE)
