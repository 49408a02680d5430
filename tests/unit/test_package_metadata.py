"""Signed data packages (docs/protocol.md, 'Signed data packages'): every rule the car applies before it
installs, each with its refusal code, and the test vectors of the document."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carlink.protocol.packages import (
    PackageRefused,
    Root,
    canonical_json,
    key_document,
    keyid_of,
    parse_root,
    root_document,
    sign_envelope,
    target_entry,
    targets_document,
    update_root_chain,
    verify_file,
    verify_root_update,
    verify_self_signed_root,
    verify_targets,
)

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=30)

# RFC 8032, section 7.1, test 1: the fixed key of the document's test vectors.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
VECTOR_KEY = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
VECTOR_KEY_DOCUMENT = (
    b'{"keytype":"ed25519","public":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}'
)
VECTOR_KEYID = "b0db370d863b74cf9c1b63da4f3141f1fc185766b5dad8fd84eb603cbf62d832"
VECTOR_TARGETS: dict[str, Any] = {
    "type": "targets",
    "version": 1,
    "expires": "2030-01-01T00:00:00Z",
    "targets": {
        "acc.bin": {
            "length": 5,
            "hashes": {"sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
            "custom": {"function": "adaptive_cruise"},
        }
    },
}
VECTOR_TARGETS_CANONICAL = (
    b'{"expires":"2030-01-01T00:00:00Z","targets":{"acc.bin":{"custom":{"function":"adaptive_cruise"},'
    b'"hashes":{"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},"length":5}},'
    b'"type":"targets","version":1}'
)
VECTOR_TARGETS_SIG = (
    "50fe2bd8da30a38178e4f0882661dc0c4d87c35f0df7e221e499c5a7d73d3d40"
    "a9e0b38deebbb3c2a2756d6a6aa5faef8af8d974c0cffa2ece5942c9109f5108"
)
VECTOR_ROOT_SIG = (
    "2801336fb7586a780e705222f159ad86c343dd6e05aecf54c2ac062c9ad67e88"
    "5cf6dd88754251fb537b756c28db1ed5829082437a0995d6b0ea0bba875e0f00"
)


def key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


ROOT_A, ROOT_B, ROOT_C, TARGETS_A, TARGETS_B, STRANGER = (key(n) for n in range(1, 7))


def make_root(
    version: int,
    root_keys: list[Ed25519PrivateKey],
    targets_keys: list[Ed25519PrivateKey],
    signers: list[Ed25519PrivateKey],
    *,
    expires: dt.datetime = LATER,
    root_threshold: int = 1,
    targets_threshold: int = 1,
) -> dict[str, Any]:
    document = root_document(
        version=version,
        expires=expires,
        root_keys=[k.public_key() for k in root_keys],
        targets_keys=[k.public_key() for k in targets_keys],
        root_threshold=root_threshold,
        targets_threshold=targets_threshold,
    )
    return sign_envelope(document, signers)


def make_targets(
    version: int, signers: list[Ed25519PrivateKey], *, expires: dt.datetime = LATER, data: bytes = b"payload"
) -> dict[str, Any]:
    document = targets_document(
        version=version, expires=expires, targets={"acc.bin": target_entry(data, {"function": "acc"})}
    )
    return sign_envelope(document, signers)


def trusted(envelope: dict[str, Any]) -> Root:
    return verify_self_signed_root(envelope, NOW)


ROOT_V1 = make_root(1, [ROOT_A], [TARGETS_A], [ROOT_A])


def refused(code: str) -> Any:
    return pytest.raises(PackageRefused, match=f"^{code}:")


# --- test vectors --------------------------------------------------------------------------------------


def test_vector_key_document_and_keyid() -> None:
    document = key_document(VECTOR_KEY.public_key())
    assert canonical_json(document) == VECTOR_KEY_DOCUMENT
    assert keyid_of(document) == VECTOR_KEYID == hashlib.sha256(VECTOR_KEY_DOCUMENT).hexdigest()


def test_vector_targets_canonical_bytes_and_signature() -> None:
    assert canonical_json(VECTOR_TARGETS) == VECTOR_TARGETS_CANONICAL
    envelope = sign_envelope(VECTOR_TARGETS, [VECTOR_KEY])
    assert envelope["signatures"] == [{"keyid": VECTOR_KEYID, "sig": VECTOR_TARGETS_SIG}]


def test_vector_root_signature_and_the_car_accepts_the_vector_targets() -> None:
    root_envelope = make_root(
        1, [VECTOR_KEY], [VECTOR_KEY], [VECTOR_KEY], expires=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    )
    assert root_envelope["signatures"] == [{"keyid": VECTOR_KEYID, "sig": VECTOR_ROOT_SIG}]
    root = trusted(root_envelope)
    envelope = {"signed": VECTOR_TARGETS, "signatures": [{"keyid": VECTOR_KEYID, "sig": VECTOR_TARGETS_SIG}]}
    targets = verify_targets(root, envelope, NOW)
    verify_file(targets.target("acc.bin"), b"hello")


def test_the_documented_test_vectors_are_the_tested_ones() -> None:
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("## Signed data packages") :]
    for value in (
        RFC8032_SECRET.hex(),
        VECTOR_KEY_DOCUMENT.decode(),
        VECTOR_KEYID,
        VECTOR_TARGETS_CANONICAL.decode(),
        VECTOR_TARGETS_SIG,
        VECTOR_ROOT_SIG,
    ):
        assert value in section, value


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "Größe 車"}}) == (
        '{"a":{"c":"Größe 車","d":[1,2]},"b":1}'.encode()
    )


# --- targets -------------------------------------------------------------------------------------------


def test_targets_signed_by_the_targets_key_are_accepted() -> None:
    targets = verify_targets(trusted(ROOT_V1), make_targets(3, [TARGETS_A]), NOW, last_seen_version=2)
    assert targets.version == 3
    assert targets.target("acc.bin").custom == {"function": "acc"}


def test_tampered_targets_are_refused_as_bad_signature() -> None:
    envelope = make_targets(1, [TARGETS_A])
    envelope["signed"]["targets"]["acc.bin"]["length"] = 1
    with refused("bad_signature"):
        verify_targets(trusted(ROOT_V1), envelope, NOW)


def test_targets_signed_with_a_wrong_key_are_refused() -> None:
    with refused("bad_signature"):
        verify_targets(trusted(ROOT_V1), make_targets(1, [STRANGER]), NOW)


def test_targets_signed_with_the_root_key_are_refused() -> None:
    # Roles are separate: a root key vouches for root metadata only.
    with refused("bad_signature"):
        verify_targets(trusted(ROOT_V1), make_targets(1, [ROOT_A]), NOW)


def test_a_signature_under_another_keys_id_is_refused() -> None:
    envelope = make_targets(1, [STRANGER])
    envelope["signatures"][0]["keyid"] = keyid_of(key_document(TARGETS_A.public_key()))
    with refused("bad_signature"):
        verify_targets(trusted(ROOT_V1), envelope, NOW)


def test_targets_below_the_threshold_are_refused() -> None:
    root = trusted(make_root(1, [ROOT_A], [TARGETS_A, TARGETS_B], [ROOT_A], targets_threshold=2))
    with refused("threshold_not_met"):
        verify_targets(root, make_targets(1, [TARGETS_A]), NOW)
    doubled = make_targets(1, [TARGETS_A])
    doubled["signatures"] *= 2  # one key signing twice still counts once
    with refused("threshold_not_met"):
        verify_targets(root, doubled, NOW)
    assert verify_targets(root, make_targets(1, [TARGETS_A, TARGETS_B]), NOW).version == 1


def test_expired_targets_are_refused() -> None:
    with refused("expired"):
        verify_targets(trusted(ROOT_V1), make_targets(1, [TARGETS_A], expires=NOW), NOW)


def test_targets_are_refused_while_the_trusted_root_has_expired() -> None:
    root = parse_root(make_root(1, [ROOT_A], [TARGETS_A], [ROOT_A], expires=NOW - dt.timedelta(seconds=1)))
    with refused("expired"):
        verify_targets(root, make_targets(1, [TARGETS_A]), NOW)


def test_replayed_older_targets_are_refused_as_rollback() -> None:
    with refused("rollback"):
        verify_targets(trusted(ROOT_V1), make_targets(4, [TARGETS_A]), NOW, last_seen_version=5)
    # The same version again is the same document fetched twice, not a rollback.
    assert verify_targets(trusted(ROOT_V1), make_targets(5, [TARGETS_A]), NOW, last_seen_version=5)


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: e.pop("signatures"),
        lambda e: e["signed"].pop("version"),
        lambda e: e["signed"].update(version="2"),
        lambda e: e["signed"].update(expires="2030-01-01T00:00:00"),
        lambda e: e["signed"].update(type="root"),
        lambda e: e["signed"]["targets"]["acc.bin"]["hashes"].update(sha256="abc"),
        lambda e: e["signatures"][0].update(sig="zz"),
    ],
    ids=[
        "no-signatures",
        "no-version",
        "string-version",
        "naive-expiry",
        "wrong-type",
        "short-hash",
        "bad-sig",
    ],
)
def test_malformed_targets_are_refused(damage: Any) -> None:
    envelope = make_targets(1, [TARGETS_A])
    damage(envelope)
    with refused("malformed"):
        verify_targets(trusted(ROOT_V1), envelope, NOW)


def test_a_file_the_targets_do_not_name_is_refused() -> None:
    targets = verify_targets(trusted(ROOT_V1), make_targets(1, [TARGETS_A]), NOW)
    with refused("unknown_target"):
        targets.target("matrix-lights.bin")


# --- files ---------------------------------------------------------------------------------------------


def test_the_named_file_verifies_from_bytes_and_from_disk(tmp_path: Path) -> None:
    target = verify_targets(trusted(ROOT_V1), make_targets(1, [TARGETS_A]), NOW).target("acc.bin")
    verify_file(target, b"payload")
    path = tmp_path / "acc.bin"
    path.write_bytes(b"payload")
    verify_file(target, path)


def test_a_tampered_file_is_refused_as_hash_mismatch(tmp_path: Path) -> None:
    target = verify_targets(trusted(ROOT_V1), make_targets(1, [TARGETS_A]), NOW).target("acc.bin")
    with refused("hash_mismatch"):
        verify_file(target, b"paylOad")
    path = tmp_path / "acc.bin"
    path.write_bytes(b"paylOad")
    with refused("hash_mismatch"):
        verify_file(target, path)


def test_a_truncated_or_padded_file_is_refused_as_length_mismatch() -> None:
    target = verify_targets(trusted(ROOT_V1), make_targets(1, [TARGETS_A]), NOW).target("acc.bin")
    with refused("length_mismatch"):
        verify_file(target, b"paylo")
    with refused("length_mismatch"):
        verify_file(target, b"payload!")


# --- root chain ----------------------------------------------------------------------------------------


def test_provisioned_root_must_be_signed_by_its_own_root_keys() -> None:
    with refused("bad_signature"):
        verify_self_signed_root(make_root(1, [ROOT_A], [TARGETS_A], [STRANGER]))


def test_root_rotation_signed_by_old_and_new_keys_is_accepted() -> None:
    v2 = make_root(2, [ROOT_B], [TARGETS_A], [ROOT_A, ROOT_B])
    root = verify_root_update(trusted(ROOT_V1), v2, NOW)
    assert root.version == 2
    assert root.roles["root"].keyids == [keyid_of(key_document(ROOT_B.public_key()))]


def test_root_rotation_signed_only_by_the_new_key_is_refused() -> None:
    # Whoever stole a server cannot make the car trust their own key: the old root must vouch for it.
    with refused("bad_signature"):
        verify_root_update(trusted(ROOT_V1), make_root(2, [ROOT_B], [TARGETS_A], [ROOT_B]), NOW)


def test_root_rotation_signed_only_by_the_old_key_is_refused() -> None:
    with refused("bad_signature"):
        verify_root_update(trusted(ROOT_V1), make_root(2, [ROOT_B], [TARGETS_A], [ROOT_A]), NOW)


def test_root_rotation_below_the_old_roots_threshold_is_refused() -> None:
    v1 = make_root(1, [ROOT_A, ROOT_B], [TARGETS_A], [ROOT_A, ROOT_B], root_threshold=2)
    v2 = make_root(2, [ROOT_C], [TARGETS_A], [ROOT_A, ROOT_C])
    with refused("threshold_not_met"):
        verify_root_update(trusted(v1), v2, NOW)
    assert (
        verify_root_update(
            trusted(v1), make_root(2, [ROOT_C], [TARGETS_A], [ROOT_A, ROOT_B, ROOT_C]), NOW
        ).version
        == 2
    )


def test_root_chain_is_walked_one_version_at_a_time_and_a_skipped_version_is_refused() -> None:
    v2 = make_root(2, [ROOT_B], [TARGETS_A], [ROOT_A, ROOT_B])
    v3 = make_root(3, [ROOT_C], [TARGETS_B], [ROOT_B, ROOT_C])
    with refused("bad_signature"):
        verify_root_update(trusted(ROOT_V1), v3, NOW)  # v1 -> v3: v1's root key never vouched for v3
    vouched = make_root(3, [ROOT_C], [TARGETS_B], [ROOT_A, ROOT_C])
    with refused("malformed"):
        verify_root_update(trusted(ROOT_V1), vouched, NOW)  # signed alright, but v2 was skipped
    root = update_root_chain(trusted(ROOT_V1), [v2, v3], NOW)
    assert root.version == 3
    # After a targets key rotation, targets signed with the retired key are refused.
    with refused("bad_signature"):
        verify_targets(root, make_targets(2, [TARGETS_A]), NOW)
    assert verify_targets(root, make_targets(2, [TARGETS_B]), NOW).version == 2


def test_an_old_root_replayed_is_refused_as_rollback() -> None:
    v2 = make_root(2, [ROOT_A], [TARGETS_A], [ROOT_A])
    root = verify_root_update(trusted(ROOT_V1), v2, NOW)
    with refused("rollback"):
        verify_root_update(root, copy.deepcopy(ROOT_V1), NOW)
    with refused("rollback"):
        verify_root_update(root, v2, NOW)


def test_only_the_last_root_of_a_chain_must_be_unexpired() -> None:
    v2 = make_root(2, [ROOT_A], [TARGETS_A], [ROOT_A], expires=NOW - dt.timedelta(days=1))
    v3 = make_root(3, [ROOT_A], [TARGETS_A], [ROOT_A])
    assert update_root_chain(trusted(ROOT_V1), [v2, v3], NOW).version == 3
    with refused("expired"):
        update_root_chain(trusted(ROOT_V1), [v2], NOW)
    with refused("expired"):
        verify_root_update(trusted(ROOT_V1), v2, NOW)


def test_a_malformed_root_is_refused() -> None:
    envelope = make_root(2, [ROOT_A], [TARGETS_A], [ROOT_A])
    del envelope["signed"]["roles"]["targets"]
    with refused("malformed"):
        verify_root_update(trusted(ROOT_V1), envelope, NOW)
    with refused("malformed"):
        verify_root_update(trusted(ROOT_V1), ["not", "an", "envelope"], NOW)
