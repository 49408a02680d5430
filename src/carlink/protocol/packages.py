"""Signed data packages (docs/protocol.md, 'Signed data packages'): Uptane/TUF-style root and targets
metadata, Ed25519 signatures over canonical JSON, and the checks a car makes before it installs a file.

The cloud signs with `sign_envelope`; the car verifies with `verify_root_update` (one root version at a
time), `verify_targets` and `verify_file`. Every refusal is a `PackageRefused` with a stable `code`, which
the car reports to the cloud.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

ROOT = "root"
TARGETS = "targets"
ROLES = (ROOT, TARGETS)

# The stable refusal codes; docs/protocol.md explains when each applies.
BAD_SIGNATURE = "bad_signature"
THRESHOLD_NOT_MET = "threshold_not_met"
EXPIRED = "expired"
ROLLBACK = "rollback"
LENGTH_MISMATCH = "length_mismatch"
HASH_MISMATCH = "hash_mismatch"
UNKNOWN_TARGET = "unknown_target"
MALFORMED = "malformed"
REFUSAL_CODES = (
    BAD_SIGNATURE,
    THRESHOLD_NOT_MET,
    EXPIRED,
    ROLLBACK,
    LENGTH_MISMATCH,
    HASH_MISMATCH,
    UNKNOWN_TARGET,
    MALFORMED,
)
HASH_CHUNK = 1024 * 1024
# Package names travel in URLs and become file names in the car: no slashes, no leading dot.
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # use fullmatch


class PackageRefused(Exception):
    """Metadata or a file the car must not trust; `code` is one of REFUSAL_CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# --- canonical JSON and keys ----------------------------------------------------------------------------


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the exact bytes that are signed and hashed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_time(moment: dt.datetime) -> str:
    """Expiry times in metadata: UTC, whole seconds, `Z` (`2027-01-01T00:00:00Z`)."""
    if moment.tzinfo is None:
        raise ValueError("metadata times must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_document(public: Ed25519PublicKey) -> dict[str, str]:
    return {"keytype": "ed25519", "public": public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()}


def keyid_of(document: dict[str, str]) -> str:
    """The key's id: SHA-256 (hex) of its canonical key document, so an id cannot name another key."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def private_keyid(key: Ed25519PrivateKey) -> str:
    return keyid_of(key_document(key.public_key()))


# --- documents ------------------------------------------------------------------------------------------


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("expires must name its time zone (UTC, `Z`)")
    return moment


Expiry = Annotated[dt.datetime, AfterValidator(_aware)]


class _Document(BaseModel):
    # Unknown fields are tolerated (a newer cloud may add some); the signature covers them all the same,
    # because it is checked over the document as received, not over this parsed copy.
    model_config = ConfigDict(extra="ignore", frozen=True)


class KeyDocument(_Document):
    keytype: Literal["ed25519"]
    public: str = Field(pattern=r"^[0-9a-f]{64}$")

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public))


class RoleKeys(_Document):
    keyids: list[str]
    threshold: int = Field(ge=1, strict=True)


class Root(_Document):
    type: Literal["root"]
    version: int = Field(ge=1, strict=True)
    expires: Expiry
    keys: dict[str, KeyDocument]
    roles: dict[str, RoleKeys]

    @field_validator("roles")
    @classmethod
    def _both_roles(cls, roles: dict[str, RoleKeys]) -> dict[str, RoleKeys]:
        missing = set(ROLES) - set(roles)
        if missing:
            raise ValueError(f"roles {sorted(missing)} missing")
        return roles


class TargetFile(_Document):
    length: int = Field(ge=0, strict=True)
    hashes: dict[str, str]
    custom: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hashes")
    @classmethod
    def _sha256(cls, hashes: dict[str, str]) -> dict[str, str]:
        digest = hashes.get("sha256", "")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("hashes.sha256 must be 64 lower-case hex digits")
        return hashes

    @property
    def sha256(self) -> str:
        return self.hashes["sha256"]


class Targets(_Document):
    type: Literal["targets"]
    version: int = Field(ge=1, strict=True)
    expires: Expiry
    targets: dict[str, TargetFile]

    def target(self, name: str) -> TargetFile:
        found = self.targets.get(name)
        if found is None:
            raise PackageRefused(UNKNOWN_TARGET, f"targets version {self.version} names no file {name!r}")
        return found


class SignatureEntry(_Document):
    keyid: str
    sig: str = Field(pattern=r"^[0-9a-f]{128}$")


class Envelope(_Document):
    signed: dict[str, Any]
    signatures: list[SignatureEntry]


def _envelope(raw: Any) -> Envelope:
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise PackageRefused(MALFORMED, f"not a signed envelope: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{where}: {problem.get('msg', '')}" if where else str(problem.get("msg", ""))


def parse_root(raw: Any) -> Root:
    """The root document inside an envelope; signatures are NOT checked here."""
    try:
        return Root.model_validate(_envelope(raw).signed)
    except ValidationError as exc:
        raise PackageRefused(MALFORMED, f"not a root document: {_first_problem(exc)}") from exc


def parse_targets(raw: Any) -> Targets:
    """The targets document inside an envelope; signatures are NOT checked here."""
    try:
        return Targets.model_validate(_envelope(raw).signed)
    except ValidationError as exc:
        raise PackageRefused(MALFORMED, f"not a targets document: {_first_problem(exc)}") from exc


# --- signing (cloud) ------------------------------------------------------------------------------------


def sign_envelope(signed: dict[str, Any], keys: Iterable[Ed25519PrivateKey]) -> dict[str, Any]:
    """{signed, signatures}: one signature per key over canonical_json(signed), sorted by keyid."""
    payload = canonical_json(signed)
    signatures = sorted(
        ({"keyid": private_keyid(key), "sig": key.sign(payload).hex()} for key in keys),
        key=lambda entry: entry["keyid"],
    )
    return {"signed": signed, "signatures": signatures}


def root_document(
    *,
    version: int,
    expires: dt.datetime,
    root_keys: Iterable[Ed25519PublicKey],
    targets_keys: Iterable[Ed25519PublicKey],
    root_threshold: int = 1,
    targets_threshold: int = 1,
) -> dict[str, Any]:
    keys: dict[str, dict[str, str]] = {}
    role_ids: dict[str, list[str]] = {ROOT: [], TARGETS: []}
    for role, members in ((ROOT, root_keys), (TARGETS, targets_keys)):
        for public in members:
            document = key_document(public)
            keyid = keyid_of(document)
            keys[keyid] = document
            role_ids[role].append(keyid)
    return {
        "type": ROOT,
        "version": version,
        "expires": format_time(expires),
        "keys": keys,
        "roles": {
            ROOT: {"keyids": sorted(role_ids[ROOT]), "threshold": root_threshold},
            TARGETS: {"keyids": sorted(role_ids[TARGETS]), "threshold": targets_threshold},
        },
    }


def target_entry(data: bytes, custom: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "length": len(data),
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
        "custom": custom or {},
    }


def targets_document(*, version: int, expires: dt.datetime, targets: dict[str, Any]) -> dict[str, Any]:
    return {"type": TARGETS, "version": version, "expires": format_time(expires), "targets": targets}


# --- verification (car) ---------------------------------------------------------------------------------


def check_threshold(root: Root, role: str, envelope: Envelope) -> None:
    """At least `threshold` distinct keys of `role` in `root` signed the document as received.

    Signatures by unknown keys or keys of another role are ignored, and a key counts once. None valid:
    bad_signature (tampered, or signed with a wrong key); some but too few: threshold_not_met.
    """
    role_keys = root.roles[role]
    payload = canonical_json(envelope.signed)
    valid: set[str] = set()
    for entry in envelope.signatures:
        key = root.keys.get(entry.keyid)
        if entry.keyid not in role_keys.keyids or key is None or entry.keyid in valid:
            continue
        if keyid_of(key.model_dump()) != entry.keyid:
            continue  # a root that names a key under the wrong id vouches for nothing
        try:
            key.public_key().verify(bytes.fromhex(entry.sig), payload)
        except (InvalidSignature, ValueError):
            continue
        valid.add(entry.keyid)
    if len(valid) >= role_keys.threshold:
        return
    if not valid:
        raise PackageRefused(
            BAD_SIGNATURE, f"no valid signature by a trusted {role} key of root v{root.version}"
        )
    raise PackageRefused(
        THRESHOLD_NOT_MET,
        f"{len(valid)} of the {role_keys.threshold} {role} signatures root v{root.version} requires",
    )


def check_fresh(document: Root | Targets, now: dt.datetime) -> None:
    if document.expires <= now:
        raise PackageRefused(
            EXPIRED, f"{document.type} version {document.version} expired at {format_time(document.expires)}"
        )


def verify_self_signed_root(raw: Any, now: dt.datetime | None = None) -> Root:
    """The root a car is provisioned with: it must be signed by a threshold of its own root keys."""
    root = parse_root(raw)
    check_threshold(root, ROOT, _envelope(raw))
    if now is not None:
        check_fresh(root, now)
    return root


def verify_root_update(
    trusted_root: Root, new_root_envelope: Any, now: dt.datetime, *, check_expiry: bool = True
) -> Root:
    """The next root, version trusted+1, signed by a threshold of the trusted root's root keys AND of its own.

    Versions go up one at a time: an older or equal version is a rollback, a skipped one is refused (the car
    fetches `{n}.root.json` for each n in turn). `check_expiry=False` for roots that a newer one in the same
    chain will replace (TUF: only the last root of the chain must be unexpired).
    """
    new_root = parse_root(new_root_envelope)
    envelope = _envelope(new_root_envelope)
    check_threshold(trusted_root, ROOT, envelope)
    check_threshold(new_root, ROOT, envelope)
    expected = trusted_root.version + 1
    if new_root.version < expected:
        raise PackageRefused(
            ROLLBACK, f"root version {new_root.version} is not newer than the trusted v{trusted_root.version}"
        )
    if new_root.version > expected:
        raise PackageRefused(
            MALFORMED, f"root version {new_root.version} given where v{expected} was expected; no skipping"
        )
    if check_expiry:
        check_fresh(new_root, now)
    return new_root


def update_root_chain(trusted_root: Root, envelopes: Iterable[Any], now: dt.datetime) -> Root:
    """Applies root versions n+1, n+2 … in order; only the newest must be unexpired."""
    root = trusted_root
    for raw in envelopes:
        root = verify_root_update(root, raw, now, check_expiry=False)
    check_fresh(root, now)
    return root


def verify_targets(
    trusted_root: Root, targets_envelope: Any, now: dt.datetime, last_seen_version: int = 0
) -> Targets:
    """Targets signed by a threshold of the root's targets keys, not older than the car has seen, unexpired.

    The trusted root must itself be unexpired (a frozen cloud could otherwise keep a car on old metadata).
    """
    check_fresh(trusted_root, now)
    targets = parse_targets(targets_envelope)
    check_threshold(trusted_root, TARGETS, _envelope(targets_envelope))
    if targets.version < last_seen_version:
        raise PackageRefused(
            ROLLBACK, f"targets version {targets.version} is older than the v{last_seen_version} already seen"
        )
    check_fresh(targets, now)
    return targets


def verify_file(target: TargetFile, data_or_path: bytes | Path) -> None:
    """The file has exactly the length and SHA-256 its targets entry names (length first: it is cheaper)."""
    if isinstance(data_or_path, bytes):
        length = len(data_or_path)
        digest = hashlib.sha256(data_or_path).hexdigest() if length == target.length else ""
    else:
        length = data_or_path.stat().st_size
        digest = _file_sha256(data_or_path) if length == target.length else ""
    if length != target.length:
        raise PackageRefused(LENGTH_MISMATCH, f"{length} bytes where the targets name {target.length}")
    if digest != target.sha256:
        raise PackageRefused(HASH_MISMATCH, f"SHA-256 {digest} where the targets name {target.sha256}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
