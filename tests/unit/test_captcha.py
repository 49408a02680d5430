"""The sign-in challenge (ACC-7): five characters in a picture, checked against a signed token."""

from __future__ import annotations

import base64
import re

import pytest

from carlink.clock import clock
from carlink.identity.captcha import ALPHABET, LIFETIME, check_captcha, new_captcha, svg_data_url

SECRET = "captcha-test-secret-0123456789"


def read_picture(data_url: str) -> str:
    """What a person reads in the picture: the text glyphs, left to right."""
    prefix = "data:image/svg+xml;base64,"
    assert data_url.startswith(prefix)
    svg = base64.b64decode(data_url[len(prefix) :]).decode()
    glyphs = re.findall(r'<text x="(\d+)"[^>]*>([^<]+)</text>', svg)
    return "".join(char for _, char in sorted(glyphs, key=lambda glyph: int(glyph[0])))


def test_the_characters_in_the_picture_solve_the_challenge() -> None:
    image, token = new_captcha(SECRET)
    answer = read_picture(image)
    assert len(answer) == 5 and set(answer) <= set(ALPHABET)
    assert check_captcha(SECRET, token, answer)


def test_the_answer_may_be_typed_in_small_letters_and_with_spaces_around() -> None:
    image, token = new_captcha(SECRET)
    assert check_captcha(SECRET, token, f"  {read_picture(image).lower()} ")


def test_a_wrong_answer_does_not_solve_the_challenge() -> None:
    image, token = new_captcha(SECRET)
    answer = read_picture(image)
    wrong = ("A" if answer[0] != "A" else "B") + answer[1:]
    assert not check_captcha(SECRET, token, wrong)
    assert not check_captcha(SECRET, token, "")


def test_a_token_signed_with_another_secret_is_worthless() -> None:
    image, token = new_captcha("another-secret-0123456789")
    assert not check_captcha(SECRET, token, read_picture(image))


@pytest.mark.parametrize("token", ["", "garbage", "1.2", "notanumber.abc.def", "1.2.3.4"])
def test_a_malformed_token_never_solves_the_challenge(token: str) -> None:
    assert not check_captcha(SECRET, token, "ABCDE")


def test_a_token_with_a_changed_expiry_is_refused() -> None:
    image, token = new_captcha(SECRET)
    expires, nonce, mac = token.split(".")
    assert not check_captcha(SECRET, f"{int(expires) + 3600}.{nonce}.{mac}", read_picture(image))


def test_a_challenge_expires_after_five_minutes() -> None:
    image, token = new_captcha(SECRET)
    answer = read_picture(image)
    clock.advance(seconds=LIFETIME - 10)
    assert check_captcha(SECRET, token, answer)
    clock.advance(seconds=20)
    assert not check_captcha(SECRET, token, answer)


def test_the_picture_is_an_svg_with_the_answer_as_its_glyphs() -> None:
    assert read_picture(svg_data_url("HX7K2")) == "HX7K2"
    assert "I" not in ALPHABET and "O" not in ALPHABET and "0" not in ALPHABET and "1" not in ALPHABET
