"""help centre

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 07:40:00

Written by hand: the full-text index depends on the dialect (docs/help.md).
- SQLite: the FTS5 table ``help_search`` (rowid = help_articles.id; title, summary, body and the CJK
  bigrams, all NFKC-normalised by carlink.help.service), tokenized by ``porter unicode61`` (Unicode word
  breaks, diacritics folded, English stems).
- PostgreSQL: one partial expression GIN index per language over a weighted tsvector of the NFKC-normalised
  texts (``normalize(…, NFKC)``, which needs a UTF8 database): 'english' for en, 'german' for de, 'simple'
  for ja plus the CJK bigrams. The expressions must stay identical to
  ``carlink.help.search.PG_DOCUMENT`` or the planner does not use the index (tests/unit/test_help_articles.py
  compares them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import carlink.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_DOCUMENT = {
    "en": (
        "setweight(to_tsvector('english'::regconfig, normalize(title, NFKC)), 'A') || "
        "setweight(to_tsvector('english'::regconfig, normalize(summary, NFKC)), 'B') || "
        "setweight(to_tsvector('english'::regconfig, normalize(body, NFKC)), 'D')"
    ),
    "de": (
        "setweight(to_tsvector('german'::regconfig, normalize(title, NFKC)), 'A') || "
        "setweight(to_tsvector('german'::regconfig, normalize(summary, NFKC)), 'B') || "
        "setweight(to_tsvector('german'::regconfig, normalize(body, NFKC)), 'D')"
    ),
    "ja": (
        "setweight(to_tsvector('simple'::regconfig, normalize(title, NFKC)), 'A') || "
        "setweight(to_tsvector('simple'::regconfig, normalize(summary, NFKC)), 'B') || "
        "setweight(to_tsvector('simple'::regconfig, normalize(body, NFKC)), 'D') || "
        "setweight(to_tsvector('simple'::regconfig, bigrams), 'C')"
    ),
}


def upgrade() -> None:
    op.create_table(
        "help_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("link_label", sa.String(length=200), nullable=False),
        sa.Column("covers", sa.JSON(), nullable=False),
        sa.Column("bigrams", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", carlink.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_articles")),
        sa.UniqueConstraint("slug", "language", name=op.f("uq_help_articles_slug_language")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for language, document in PG_DOCUMENT.items():
            op.execute(
                f"CREATE INDEX ix_help_articles_search_{language} ON help_articles "
                f"USING gin (({document})) WHERE language = '{language}'"
            )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE help_search USING fts5("
            "title, summary, body, bigrams, tokenize = 'porter unicode61 remove_diacritics 2')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for language in PG_DOCUMENT:
            op.execute(f"DROP INDEX IF EXISTS ix_help_articles_search_{language}")
    else:
        op.execute("DROP TABLE IF EXISTS help_search")
    op.drop_table("help_articles")
