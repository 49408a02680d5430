"""The help centre's table: one row per article and language, copied from the article files (help.service).

The full-text index beside it depends on the database (migration 0007, docs/help.md): on SQLite the FTS5
table ``help_search`` (rowid = ``help_articles.id``), kept by `service.ensure_help_articles`; on PostgreSQL
expression GIN indexes over this table, kept by PostgreSQL itself.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class HelpArticle(Base):
    __tablename__ = "help_articles"
    __table_args__ = (UniqueConstraint("slug", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(32))
    order: Mapped[int] = mapped_column(default=0)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(300))
    link_label: Mapped[str] = mapped_column(String(200))
    covers: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Character bigrams of the Japanese (and other CJK) runs of the texts: Japanese has no spaces, so the
    # word tokenizers see a whole sentence as one word; a two-character word finds its bigram (docs/help.md).
    bigrams: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
