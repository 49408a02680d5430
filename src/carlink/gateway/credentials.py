"""Broker accounts: one per car (user name = VIN) and one for the cloud gateway.

Passwords are derived from the cloud secret, so every gateway and the broker's auth can check them without
a lookup; the broker ACL then lets a car read and write only its own topics (docs/protocol.md, 'Security').
"""

from __future__ import annotations

import base64
import hashlib
import hmac

GATEWAY_USER = "carlink-gateway"


def _derive(secret: str, label: str) -> str:
    digest = hmac.new(secret.encode(), label.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:32]


def car_password(secret: str, vin: str) -> str:
    return _derive(secret, f"car:{vin}")


def gateway_password(secret: str) -> str:
    return _derive(secret, "gateway")


def check_password(secret: str, username: str, password: str) -> bool:
    expected = gateway_password(secret) if username == GATEWAY_USER else car_password(secret, username)
    return hmac.compare_digest(expected, password)
