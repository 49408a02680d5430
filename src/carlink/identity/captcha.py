"""A challenge a person solves once after repeated failed sign-ins (ACC-7): five characters in an SVG.

Stateless: the form carries a signed token of the answer, so any instance can check it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from carlink.clock import clock

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LIFETIME = 300


def _mac(secret: str, answer: str, expires: int, nonce: str) -> str:
    message = f"{answer.upper()}|{expires}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def new_captcha(secret: str) -> tuple[str, str]:
    """(image as a data: URL, token to send back with the answer)."""
    answer = "".join(secrets.choice(ALPHABET) for _ in range(5))
    expires = int(clock.now().timestamp()) + LIFETIME
    nonce = secrets.token_hex(6)
    token = f"{expires}.{nonce}.{_mac(secret, answer, expires, nonce)}"
    return svg_data_url(answer), token


def token_nonce(token: str) -> str:
    return token.split(".")[1] if token.count(".") == 2 else ""


def check_captcha(secret: str, token: str, answer: str) -> bool:
    try:
        expires_text, nonce, mac = token.split(".")
        expires = int(expires_text)
    except ValueError:
        return False
    if expires < clock.now().timestamp():
        return False
    return hmac.compare_digest(mac, _mac(secret, answer.strip(), expires, nonce))


def svg_data_url(answer: str) -> str:
    rng = secrets.SystemRandom()
    glyphs = []
    for index, char in enumerate(answer):
        x = 18 + index * 28
        y = 38 + rng.randint(-6, 6)
        angle = rng.randint(-25, 25)
        glyphs.append(
            f'<text x="{x}" y="{y}" transform="rotate({angle} {x} {y})" font-size="30" '
            f'font-family="monospace" fill="#1d2b36">{char}</text>'
        )
    lines = "".join(
        f'<line x1="{rng.randint(0, 170)}" y1="{rng.randint(0, 56)}" x2="{rng.randint(0, 170)}" '
        f'y2="{rng.randint(0, 56)}" stroke="#8aa" stroke-width="1.5"/>'
        for _ in range(6)
    )
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="170" height="56" viewBox="0 0 170 56">'
        f'<rect width="170" height="56" fill="#f4f7f9"/>{lines}{"".join(glyphs)}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
