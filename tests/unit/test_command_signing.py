"""Command signing test vectors (docs/protocol.md, 'Signing'): Ed25519 over canonical JSON."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carlink.protocol.messages import Command, CommandType
from carlink.protocol.signing import (
    canonical_bytes,
    load_public_key,
    public_key_text,
    sign_command,
    verify_command,
)

# RFC 8032, section 7.1, test 1: a published key pair, so the vectors below can be checked by any Ed25519.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
KEY = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)

COMMAND = Command(
    id="cmd-00000001",
    vin="WP0ZZZY1ZPS100001",
    type=CommandType.CLIMATE_START,
    params={"target_temperature_c": 22.5, "zones": {"front_left": True}},
    issued_at=dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC),
    expires_at=dt.datetime(2024, 5, 1, 8, 1, tzinfo=dt.UTC),
    kid="fleet-test",
)
CANONICAL = (
    b'{"expires_at":"2024-05-01T08:01:00Z","id":"cmd-00000001","issued_at":"2024-05-01T08:00:00Z",'
    b'"kid":"fleet-test","params":{"target_temperature_c":22.5,"zones":{"front_left":true}},'
    b'"type":"CLIMATE_START","v":1,"vin":"WP0ZZZY1ZPS100001"}'
)
SIGNATURE = "obAJtgyyGOASW51DEKMWPhDwB3Ot9smvEOTq4DiAxHeJCu9FBwSpyk8nRubQTUtL1D9Lulz_R-33T3TzlfqpBw"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _trusted() -> dict[str, Any]:
    return {"fleet-test": KEY.public_key()}


def _signed() -> dict[str, Any]:
    return sign_command(COMMAND, KEY).model_dump(mode="json")


def test_public_keys_are_written_as_unpadded_base64url_of_the_raw_32_bytes() -> None:
    text = public_key_text(KEY.public_key())
    assert text == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert "=" not in text
    assert public_key_text(load_public_key(text)) == text
    assert load_public_key(text).public_bytes_raw() == RFC8032_PUBLIC


def test_canonical_bytes_are_sorted_compact_utf8_without_the_signature() -> None:
    payload = _signed()
    assert canonical_bytes(payload) == CANONICAL
    assert canonical_bytes({"b": 1, "a": "Grüße", "sig": "ignored"}) == '{"a":"Grüße","b":1}'.encode()


def test_canonical_bytes_do_not_depend_on_key_order_or_the_signature() -> None:
    payload = _signed()
    reordered = dict(reversed(list(payload.items())))
    assert canonical_bytes(reordered) == canonical_bytes(payload)
    assert canonical_bytes({**payload, "sig": "something else"}) == CANONICAL


def test_a_signed_command_carries_the_known_signature_and_verifies() -> None:
    payload = _signed()
    assert payload["sig"] == SIGNATURE
    assert verify_command(payload, _trusted())
    # The signature is plain Ed25519 over the canonical bytes: any implementation can check it.
    KEY.public_key().verify(_unb64(SIGNATURE), CANONICAL)


@pytest.mark.parametrize(
    "field, value",
    [
        ("params", {"target_temperature_c": 30.0, "zones": {"front_left": True}}),
        ("vin", "WP0ZZZ97ZJS200002"),
        ("expires_at", "2030-05-01T08:01:00Z"),
        ("issued_at", "2024-05-01T07:59:59Z"),
        ("type", "UNLOCK"),
        ("id", "cmd-00000002"),
    ],
)
def test_a_command_changed_after_signing_does_not_verify(field: str, value: Any) -> None:
    tampered = {**_signed(), field: value}
    assert not verify_command(tampered, _trusted())


def test_a_command_signed_by_another_key_does_not_verify() -> None:
    other = Ed25519PrivateKey.generate()
    forged = sign_command(COMMAND, other).model_dump(mode="json")
    assert forged["kid"] == "fleet-test"
    assert not verify_command(forged, _trusted())


def test_a_command_naming_an_untrusted_key_does_not_verify() -> None:
    payload = {**_signed(), "kid": "fleet-unknown"}
    assert not verify_command(payload, _trusted())
    assert not verify_command(_signed(), {})


@pytest.mark.parametrize("sig", ["", "not base64 !!", "AAAA", None, 42])
def test_a_missing_or_garbled_signature_does_not_verify(sig: Any) -> None:
    payload = {**_signed(), "sig": sig}
    if sig is None:
        del payload["sig"]
    assert not verify_command(payload, _trusted())


def test_signing_keeps_every_field_and_only_adds_the_signature() -> None:
    signed = sign_command(COMMAND, KEY)
    assert signed.model_dump(exclude={"sig"}) == COMMAND.model_dump(exclude={"sig"})
    assert COMMAND.sig == ""
