"""Ed25519 signatures over canonical JSON, for commands the car must be able to trust."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ValidationError

from carlink.protocol.messages import (
    MAX_MESSAGE_BYTES,
    Command,
    Deliveries,
    Entitlements,
    RefusalReason,
    SecuritySet,
)

Signed = TypeVar("Signed", Command, Entitlements, Deliveries, SecuritySet)
Set = TypeVar("Set", bound=BaseModel)


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that are signed (docs/protocol.md, 'Signing')."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_unb64(text))


def sign_command(message: Signed, key: Ed25519PrivateKey) -> Signed:
    """Signs a command, an entitlements or a deliveries message (each names its key in `kid`, has `sig`)."""
    payload = message.model_dump(mode="json")
    return message.model_copy(update={"sig": _b64(key.sign(canonical_bytes(payload)))})


def verify_command(payload: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> bool:
    """True when payload['sig'] is a signature of a trusted key named by payload['kid']."""
    key = keys.get(str(payload.get("kid", "")))
    sig = payload.get("sig")
    if key is None or not isinstance(sig, str):
        return False
    try:
        key.verify(_unb64(sig), canonical_bytes(payload))
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_signed_set(payload: bytes, model: type[Set]) -> tuple[Set | None, dict[str, Any]]:
    """A retained set from the cloud (entitlements, deliveries, security) as the car reads it: the message and
    the raw object its signature covers, or None for anything malformed (docs/protocol.md, Transport)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        return None, {}
    try:
        raw = json.loads(payload)
        return model.model_validate(raw), raw
    except (ValueError, ValidationError):
        return None, {}


def refusal_of_set(
    raw: dict[str, Any], keys: dict[str, Ed25519PublicKey], *, own_vin: str, held_revision: int
) -> RefusalReason | None:
    """Why a car refuses a retained set: not signed by a trusted key, for another car, or not newer than the
    revision it holds (a replay). None: the car takes it."""
    if not verify_command(raw, keys):
        return RefusalReason.BAD_SIGNATURE
    if raw.get("vin") != own_vin:
        return RefusalReason.WRONG_VEHICLE
    revision = raw.get("revision")
    if not isinstance(revision, int) or revision <= held_revision:
        return RefusalReason.REPLAYED
    return None
