"""Pictures of a car in its colour (reference doc §3.4), drawn as PNG with zlib alone.

Home Assistant fetches each picture URL itself, with a plain HTTP client and no bearer token, so the URLs
must work without authorisation. Instead of opening them to anyone who can guess a VIN, each URL carries an
unguessable token: an HMAC of the VIN, model and colour under the deployment's secret. Only someone who
was shown the URL by the authorised API (A7) can fetch it; an unknown VIN and a wrong token get the same
404, so the picture route tells strangers nothing. The token changes with the colour, which also busts
caches when a car is repainted.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from functools import lru_cache

from carlink.garage.models import Vehicle

VIEWS = ("frontView", "sideView", "rearView", "rearTopView", "topView")
WIDTH, HEIGHT = 640, 360
TOKEN_HEX = 32

Colour = tuple[int, int, int, int]
Point = tuple[float, float]


def picture_token(secret: str, vehicle: Vehicle) -> str:
    message = f"picture:{vehicle.vin}:{vehicle.model_key}:{vehicle.variant_code}:{vehicle.color_hex}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:TOKEN_HEX]


def token_matches(secret: str, vehicle: Vehicle, token: str) -> bool:
    return hmac.compare_digest(picture_token(secret, vehicle).encode(), token.encode())


def picture_path(secret: str, vehicle: Vehicle, view: str) -> str:
    return f"/app/pictures/{vehicle.vin}/{picture_token(secret, vehicle)}/{view}.png"


class Canvas:
    """An RGBA raster filled span by span (bytearray slices keep pure Python fast enough)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(width * height * 4)  # transparent

    def span(self, y: int, x0: float, x1: float, colour: Colour) -> None:
        if not 0 <= y < self.height:
            return
        start, end = max(0, round(x0)), min(self.width, round(x1))
        if end > start:
            offset = (y * self.width + start) * 4
            self.pixels[offset : offset + (end - start) * 4] = bytes(colour) * (end - start)

    def polygon(self, points: list[Point], colour: Colour) -> None:
        """Even-odd scanline fill, sampled at pixel centres."""
        top = max(0, int(min(p[1] for p in points)))
        bottom = min(self.height - 1, int(max(p[1] for p in points)) + 1)
        edges = list(zip(points, points[1:] + points[:1], strict=True))
        for y in range(top, bottom + 1):
            centre = y + 0.5
            crossings = sorted(
                x0 + (centre - y0) * (x1 - x0) / (y1 - y0)
                for (x0, y0), (x1, y1) in edges
                if (y0 <= centre < y1) or (y1 <= centre < y0)
            )
            for left, right in zip(crossings[::2], crossings[1::2], strict=False):
                self.span(y, left, right, colour)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour: Colour) -> None:
        for y in range(max(0, int(cy - ry)), min(self.height, int(cy + ry) + 1)):
            dy = (y + 0.5 - cy) / ry
            if abs(dy) <= 1:
                half = rx * (1 - dy * dy) ** 0.5
                self.span(y, cx - half, cx + half, colour)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: Colour) -> None:
        for y in range(max(0, int(y0)), min(self.height, int(y1))):
            self.span(y, x0, x1, colour)

    def png(self) -> bytes:
        stride = self.width * 4
        raw = b"".join(
            b"\x00" + bytes(self.pixels[row * stride : (row + 1) * stride]) for row in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 6, 0, 0, 0)  # 8-bit RGBA
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def parse_colour(hex_colour: str) -> Colour:
    try:
        value = int(hex_colour[:6], 16) if len(hex_colour) >= 6 else 0xC3CDD3
    except ValueError:
        value = 0xC3CDD3
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF, 255


def _shade(colour: Colour, factor: float) -> Colour:
    r, g, b, a = colour
    return min(255, int(r * factor)), min(255, int(g * factor)), min(255, int(b * factor)), a


SHADOW: Colour = (0, 0, 0, 70)
GLASS: Colour = (38, 48, 62, 235)
TYRE: Colour = (28, 28, 30, 255)
RIM: Colour = (176, 180, 186, 255)
HEADLIGHT: Colour = (236, 240, 244, 255)
TAIL_LIGHT: Colour = (200, 24, 32, 255)


def _side(c: Canvas, paint: Colour) -> None:
    c.ellipse(325, 300, 280, 14, SHADOW)
    c.polygon(
        [(48, 262), (56, 214), (120, 196), (236, 146), (380, 138), (506, 180), (590, 204), (600, 262)], paint
    )
    c.polygon([(52, 262), (600, 262), (598, 274), (56, 274)], _shade(paint, 0.6))
    c.polygon([(258, 154), (372, 147), (468, 184), (236, 188)], GLASS)
    c.rect(356, 150, 362, 188, paint)  # B-pillar
    c.polygon([(566, 206), (592, 212), (590, 222), (570, 220)], TAIL_LIGHT)
    c.polygon([(60, 214), (96, 206), (94, 218), (62, 222)], HEADLIGHT)
    for x in (150, 490):
        c.ellipse(x, 268, 46, 46, TYRE)
        c.ellipse(x, 268, 27, 27, RIM)


def _front(c: Canvas, paint: Colour, rear: bool = False) -> None:
    c.ellipse(320, 306, 230, 14, SHADOW)
    for x in (150, 444):
        c.rect(x, 262, x + 46, 306, TYRE)
    c.polygon([(130, 290), (120, 214), (180, 176), (460, 176), (520, 214), (510, 290)], paint)
    c.polygon([(196, 178), (230, 112), (410, 112), (444, 178)], _shade(paint, 0.85))
    c.polygon([(212, 174), (240, 122), (400, 122), (428, 174)], GLASS)
    c.rect(130, 280, 510, 292, _shade(paint, 0.6))
    if rear:
        c.rect(160, 208, 480, 218, TAIL_LIGHT)
        c.rect(262, 250, 378, 264, _shade(paint, 0.5))  # number plate recess
    else:
        c.ellipse(190, 220, 32, 16, HEADLIGHT)
        c.ellipse(450, 220, 32, 16, HEADLIGHT)
        c.rect(250, 252, 390, 272, _shade(paint, 0.35))  # air intake


def _top(c: Canvas, paint: Colour) -> None:
    for x, y in ((140, 96), (450, 96), (140, 246), (450, 246)):
        c.rect(x, y, x + 60, y + 18, TYRE)
    c.polygon(
        [(96, 128), (120, 104), (540, 100), (578, 124), (578, 236), (540, 260), (120, 256), (96, 232)], paint
    )
    c.polygon([(250, 118), (440, 118), (470, 242), (250, 242)], _shade(paint, 0.85))  # roof
    c.polygon([(392, 120), (444, 110), (444, 250), (392, 240)], GLASS)  # windscreen
    c.polygon([(212, 126), (252, 120), (252, 240), (212, 234)], GLASS)  # rear window
    c.rect(572, 134, 580, 160, HEADLIGHT)
    c.rect(572, 200, 580, 226, HEADLIGHT)


def _rear_top(c: Canvas, paint: Colour) -> None:
    c.ellipse(320, 300, 250, 18, SHADOW)
    for x in (132, 462):
        c.rect(x, 250, x + 48, 298, TYRE)
    c.polygon([(110, 284), (104, 196), (164, 150), (476, 150), (536, 196), (530, 284)], paint)
    c.polygon([(176, 152), (222, 82), (418, 82), (464, 152)], _shade(paint, 0.85))
    c.polygon([(196, 148), (232, 96), (408, 96), (444, 148)], GLASS)
    c.rect(140, 204, 500, 216, TAIL_LIGHT)
    c.rect(110, 270, 530, 284, _shade(paint, 0.6))


@lru_cache(maxsize=256)
def render(view: str, colour_hex: str) -> bytes:
    """The picture of one view, cached: a car has few colours and the clients fetch the same URLs again."""
    canvas = Canvas(WIDTH, HEIGHT)
    paint = parse_colour(colour_hex)
    if view == "sideView":
        _side(canvas, paint)
    elif view == "frontView":
        _front(canvas, paint)
    elif view == "rearView":
        _front(canvas, paint, rear=True)
    elif view == "topView":
        _top(canvas, paint)
    elif view == "rearTopView":
        _rear_top(canvas, paint)
    else:
        raise KeyError(view)
    return canvas.png()
