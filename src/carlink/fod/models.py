"""Tables of signed data packages: the signing keys, every metadata version ever signed, the files."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class PackageKey(Base):
    """An Ed25519 key of the `root` or `targets` role. A retired key signs nothing new; cars stop trusting
    it once they have the root version that no longer lists it."""

    __tablename__ = "package_keys"

    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    # PKCS#8 PEM, like identity.models.SigningKey keeps the JWT keys.
    private_key: Mapped[str] = mapped_column(String(4000))
    # Raw public key, hex (the `public` of the key document in root metadata).
    public: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class MetadataVersion(Base):
    """One signed root or targets document, kept for ever: cars walk the root chain version by version."""

    __tablename__ = "package_metadata"
    __table_args__ = (UniqueConstraint("role", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    expires_at: Mapped[dt.datetime]
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PackageFile(Base):
    """A file the targets metadata names; its bytes live under settings.package_dir, named by SHA-256."""

    __tablename__ = "package_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_path: Mapped[str] = mapped_column(String(1000))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
