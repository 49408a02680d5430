"""The cloud side of signed data packages: keys, signed root and targets versions, stored files.

Every change signs a new metadata version; old versions stay (cars walk the root chain one version at a
time, docs/protocol.md 'Signed data packages'). Versions of a role only go up and are never re-signed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.db.base import Database
from carlink.errors import CarlinkError, NotFound
from carlink.fod.models import MetadataVersion, PackageFile, PackageKey
from carlink.protocol.packages import (
    PACKAGE_NAME,
    ROLES,
    ROOT,
    TARGETS,
    key_document,
    keyid_of,
    root_document,
    sign_envelope,
    targets_document,
)
from carlink.settings import Settings

ROOT_LIFETIME = dt.timedelta(days=365)
TARGETS_LIFETIME = dt.timedelta(days=30)
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class AddedPackage:
    file: PackageFile
    targets_version: int
    changed: bool


# --- keys -----------------------------------------------------------------------------------------------


def _new_key(role: str) -> PackageKey:
    private = Ed25519PrivateKey.generate()
    document = key_document(private.public_key())
    return PackageKey(
        keyid=keyid_of(document),
        role=role,
        private_key=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public=document["public"],
        created_at=clock.now(),
    )


def private_key(row: PackageKey) -> Ed25519PrivateKey:
    loaded = serialization.load_pem_private_key(row.private_key.encode(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CarlinkError(
            "package key %(keyid)s is not an Ed25519 key", code="package_key_invalid", keyid=row.keyid
        )
    return loaded


async def active_keys(session: AsyncSession, role: str) -> list[PackageKey]:
    rows = await session.scalars(
        select(PackageKey)
        .where(PackageKey.role == role, PackageKey.retired_at.is_(None))
        .order_by(PackageKey.created_at, PackageKey.keyid)
    )
    return list(rows)


async def all_keys(session: AsyncSession) -> list[PackageKey]:
    return list(await session.scalars(select(PackageKey).order_by(PackageKey.created_at, PackageKey.keyid)))


# --- metadata -------------------------------------------------------------------------------------------


async def _latest(session: AsyncSession, role: str) -> MetadataVersion | None:
    row: MetadataVersion | None = await session.scalar(
        select(MetadataVersion)
        .where(MetadataVersion.role == role)
        .order_by(MetadataVersion.version.desc())
        .limit(1)
    )
    return row


async def current_root(session: AsyncSession) -> MetadataVersion:
    found = await _latest(session, ROOT)
    if found is None:
        raise NotFound("no package metadata has been signed yet", code="package_metadata_not_found")
    return found


async def current_targets(session: AsyncSession) -> MetadataVersion:
    found = await _latest(session, TARGETS)
    if found is None:
        raise NotFound("no package metadata has been signed yet", code="package_metadata_not_found")
    return found


async def root_version(session: AsyncSession, version: int) -> MetadataVersion:
    found: MetadataVersion | None = await session.scalar(
        select(MetadataVersion).where(MetadataVersion.role == ROOT, MetadataVersion.version == version)
    )
    if found is None:
        raise NotFound(
            "there is no root version %(version)s", code="package_metadata_not_found", version=version
        )
    return found


async def _store(
    session: AsyncSession,
    role: str,
    version: int,
    expires: dt.datetime,
    envelope: dict[str, Any],
    now: dt.datetime,
) -> MetadataVersion:
    row = MetadataVersion(role=role, version=version, expires_at=expires, envelope=envelope, created_at=now)
    session.add(row)
    await session.flush()
    return row


async def _root_row(
    session: AsyncSession, now: dt.datetime, extra_signers: list[PackageKey] | None = None
) -> MetadataVersion:
    """Signs root version n+1 listing the active keys, by the active root keys (and any extra signers:
    on a root rotation the retiring key signs too, so cars that trust only it accept the new root)."""
    latest = await _latest(session, ROOT)
    version = latest.version + 1 if latest else 1
    root_keys = await active_keys(session, ROOT)
    targets_keys = await active_keys(session, TARGETS)
    expires = (now + ROOT_LIFETIME).replace(microsecond=0)  # as signed: whole seconds
    document = root_document(
        version=version,
        expires=expires,
        root_keys=[private_key(key).public_key() for key in root_keys],
        targets_keys=[private_key(key).public_key() for key in targets_keys],
    )
    signers = {key.keyid: key for key in [*root_keys, *(extra_signers or [])]}
    envelope = sign_envelope(document, [private_key(key) for key in signers.values()])
    return await _store(session, ROOT, version, expires, envelope, now)


async def _targets_row(session: AsyncSession, now: dt.datetime) -> MetadataVersion:
    """Signs targets version n+1 listing every stored file, by the active targets keys."""
    latest = await _latest(session, TARGETS)
    version = latest.version + 1 if latest else 1
    files = await session.scalars(select(PackageFile).order_by(PackageFile.name))
    expires = (now + TARGETS_LIFETIME).replace(microsecond=0)
    document = targets_document(
        version=version,
        expires=expires,
        targets={
            row.name: {"length": row.length, "hashes": {"sha256": row.sha256}, "custom": row.custom}
            for row in files
        },
    )
    keys = await active_keys(session, TARGETS)
    envelope = sign_envelope(document, [private_key(key) for key in keys])
    return await _store(session, TARGETS, version, expires, envelope, now)


async def ensure_keys(session: AsyncSession) -> None:
    """First start: one root key and one targets key, root v1 and an empty targets v1."""
    if await _latest(session, ROOT) is not None:
        return
    now = clock.now()
    session.add_all([_new_key(ROOT), _new_key(TARGETS)])
    await session.flush()
    await _root_row(session, now)
    await _targets_row(session, now)


async def rotate_key(session: AsyncSession, role: str) -> PackageKey:
    """A new key for `role`; the old one is retired.

    root: root version n+1 lists only the new root key and is signed by the old and the new key.
    targets: root version n+1 lists the new targets key, then targets version m+1 is signed by it.
    """
    if role not in ROLES:
        raise CarlinkError(
            "unknown key role %(role)r; use root or targets", code="invalid_key_role", role=role
        )
    await ensure_keys(session)
    now = clock.now()
    old = await active_keys(session, role)
    for row in old:
        row.retired_at = now
    key = _new_key(role)
    session.add(key)
    await session.flush()
    await _root_row(session, now, extra_signers=old if role == ROOT else None)
    if role == TARGETS:
        await _targets_row(session, now)
    return key


async def refresh_expiring(
    session: AsyncSession, now: dt.datetime, margin: dt.timedelta = dt.timedelta(hours=72)
) -> list[str]:
    """Signs a new root and/or targets version (same content) when the current one expires within
    `margin`; returns what was renewed, e.g. ['root v3']. Safe in several jobs instances at once."""
    renewed: list[str] = []
    for role in (ROOT, TARGETS):
        latest = await _latest(session, role)
        if latest is None or latest.expires_at - now >= margin:
            continue
        row = await (_root_row(session, now) if role == ROOT else _targets_row(session, now))
        renewed.append(f"{role} v{row.version}")
    return renewed


async def _due(session: AsyncSession, now: dt.datetime, margin: dt.timedelta) -> bool:
    for role in (ROOT, TARGETS):
        latest = await _latest(session, role)
        if latest is not None and latest.expires_at - now < margin:
            return True
    return False


async def renew_due(db: Database, settings: Settings) -> list[str]:
    """For the jobs role: a cheap read each round, a transaction only when something is due."""
    margin = dt.timedelta(hours=settings.package_renew_margin_hours)
    now = clock.now()
    async with db.session() as session:
        if not await _due(session, now, margin):
            return []
    try:
        async with db.transaction() as session:
            return await refresh_expiring(session, now, margin)
    except IntegrityError:  # another jobs instance signed the same version first; it is renewed
        return []


# --- files ----------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not PACKAGE_NAME.fullmatch(name):
        raise CarlinkError(
            "a package name is 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit",
            code="invalid_package_name",
        )
    return name


def _store_blob(folder: str, source: bytes | Path) -> tuple[Path, str, int]:
    """Copies the bytes to <folder>/<sha256[:2]>/<sha256> (atomically) and returns path, hash, length."""
    if isinstance(source, Path) and not source.is_file():
        raise CarlinkError("no file at %(source)s", code="package_file_missing", source=str(source))
    package_dir = Path(folder).resolve()
    package_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=package_dir, prefix=".incoming-", delete=False) as temp:
        try:
            if isinstance(source, bytes):
                digest.update(source)
                temp.write(source)
            else:
                with source.open("rb") as file:
                    while chunk := file.read(COPY_CHUNK):
                        digest.update(chunk)
                        temp.write(chunk)
            temp.flush()
            os.fsync(temp.fileno())
        except BaseException:
            os.unlink(temp.name)
            raise
    sha256 = digest.hexdigest()
    target = package_dir / sha256[:2] / sha256
    target.parent.mkdir(exist_ok=True)
    # Always replaced, so adding a file again repairs a damaged copy; a download in progress keeps
    # reading the old inode.
    os.replace(temp.name, target)
    return target, sha256, target.stat().st_size


async def add_package(
    session: AsyncSession,
    settings: Settings,
    name: str,
    data: bytes | Path,
    custom: dict[str, Any] | None = None,
    *,
    content_type: str = "application/octet-stream",
) -> AddedPackage:
    """Stores the file (content-addressed) and signs targets version n+1 naming every file.

    The same name with the same content and custom data changes nothing (no new version).
    """
    [added] = await add_packages(session, settings, [(name, data, custom)], content_type=content_type)
    return added


async def add_packages(
    session: AsyncSession,
    settings: Settings,
    files: Sequence[tuple[str, bytes | Path, dict[str, Any] | None]],
    *,
    content_type: str = "application/octet-stream",
) -> list[AddedPackage]:
    """Several files under one new targets version (none when nothing changed)."""
    for name, _, _ in files:
        check_name(name)
    await ensure_keys(session)
    now = clock.now()
    rows: list[tuple[PackageFile, bool]] = []
    for name, data, custom in files:
        stored, sha256, length = await asyncio.to_thread(_store_blob, settings.package_dir, data)
        wanted = dict(custom or {})
        row = await session.scalar(select(PackageFile).where(PackageFile.name == name))
        if (
            row is not None
            and row.sha256 == sha256
            and row.custom == wanted
            and row.content_type == content_type
            and await asyncio.to_thread(os.path.isfile, row.stored_path)
        ):
            rows.append((row, False))
            continue
        if row is None:
            row = PackageFile(name=name, created_at=now)
            session.add(row)
        row.length, row.sha256, row.stored_path = length, sha256, str(stored)
        row.custom, row.content_type = wanted, content_type
        rows.append((row, True))
    if any(changed for _, changed in rows):
        await session.flush()
        version = (await _targets_row(session, now)).version
    else:
        version = (await current_targets(session)).version
    return [AddedPackage(row, version, changed) for row, changed in rows]


async def list_packages(session: AsyncSession) -> list[PackageFile]:
    return list(await session.scalars(select(PackageFile).order_by(PackageFile.name)))


async def package_file(session: AsyncSession, name: str) -> PackageFile:
    row: PackageFile | None = await session.scalar(select(PackageFile).where(PackageFile.name == name))
    if row is None:
        raise NotFound("no package named %(name)r", code="package_not_found", name=name)
    return row
