"""The help centre's use cases: copying the article files into the database, and reading them back.

`ensure_help_articles` runs at every start (carlink.app): it writes only the articles whose content hash
changed, adds new ones, removes deleted ones, and keeps the SQLite search table in step in the same unit of
work. Two instances starting at once may both try; the loser's unique (slug, language) violation is retried
by the caller, and then finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.errors import NotFound
from carlink.help.articles import Article, load_articles
from carlink.help.models import HelpArticle
from carlink.help.requirements import TOPICS
from carlink.help.search import bigrams, normalise


async def ensure_help_articles(session: AsyncSession, articles: tuple[Article, ...] | None = None) -> int:
    """Brings ``help_articles`` (and ``help_search`` on SQLite) to the article files; returns how many rows
    it wrote or removed."""
    articles = load_articles() if articles is None else articles
    wanted = {(article.slug, language): article for article in articles for language in i18n.LANGUAGES}
    rows = {(row.slug, row.language): row for row in (await session.scalars(select(HelpArticle))).all()}
    changed: list[HelpArticle] = []
    for (slug, language), article in wanted.items():
        digest = article.content_hash(language)
        row = rows.get((slug, language))
        if row is not None and row.content_hash == digest:
            continue
        if row is None:
            row = HelpArticle(slug=slug, language=language)
            session.add(row)
        texts = article.texts[language]
        row.topic, row.order, row.link, row.covers = (
            article.topic,
            article.order,
            article.link,
            list(article.covers),
        )
        row.title, row.summary, row.body, row.link_label = (
            texts.title,
            texts.summary,
            texts.body,
            texts.link_label,
        )
        row.bigrams = bigrams(texts.title, texts.summary, texts.body)
        row.content_hash = digest
        row.updated_at = utcnow()
        changed.append(row)
    gone = [row for key, row in rows.items() if key not in wanted]
    for row in gone:
        await session.delete(row)
    await session.flush()
    if session.get_bind().dialect.name == "sqlite":
        # PostgreSQL's expression indexes follow the table by themselves; SQLite's FTS5 table is ours to keep,
        # with the texts NFKC-normalised as PostgreSQL's index expressions normalise them (help.search).
        for row in [*gone, *changed]:
            await session.execute(text("DELETE FROM help_search WHERE rowid = :id"), {"id": row.id})
        for row in changed:
            await session.execute(
                text(
                    "INSERT INTO help_search (rowid, title, summary, body, bigrams) "
                    "VALUES (:id, :title, :summary, :body, :bigrams)"
                ),
                {
                    "id": row.id,
                    "title": normalise(row.title),
                    "summary": normalise(row.summary),
                    "body": normalise(row.body),
                    "bigrams": row.bigrams,
                },
            )
    return len(changed) + len(gone)


@dataclass(frozen=True)
class Topic:
    code: str
    heading: str  # English as written; translated where shown
    articles: list[HelpArticle]


async def topics(session: AsyncSession, language: str) -> list[Topic]:
    """Every topic that has articles, in the help centre's order, each with its articles in `language`."""
    rows = (await session.scalars(select(HelpArticle).where(HelpArticle.language == language))).all()
    order = list(TOPICS)
    listed: list[Topic] = []
    for code in order:
        mine = sorted((row for row in rows if row.topic == code), key=lambda row: (row.order, row.slug))
        if mine:
            listed.append(Topic(code, TOPICS[code], mine))
    return listed


async def article(session: AsyncSession, slug: str, language: str) -> HelpArticle:
    """The article in `language`, or in English when it is missing there; 404 `help_article_not_found`."""
    found = {
        row.language: row
        for row in (
            await session.scalars(
                select(HelpArticle).where(
                    HelpArticle.slug == slug[:120],
                    HelpArticle.language.in_((language, i18n.DEFAULT_LANGUAGE)),
                )
            )
        ).all()
    }
    row = found.get(language) or found.get(i18n.DEFAULT_LANGUAGE)
    if row is None:
        raise NotFound("there is no help article %(slug)s", code="help_article_not_found", slug=slug[:120])
    return row


async def related(session: AsyncSession, row: HelpArticle, limit: int = 4) -> list[HelpArticle]:
    """Other articles of the same topic, for the foot of an article."""
    rows = await session.scalars(
        select(HelpArticle)
        .where(
            HelpArticle.language == row.language, HelpArticle.topic == row.topic, HelpArticle.slug != row.slug
        )
        .order_by(HelpArticle.order, HelpArticle.slug)
        .limit(limit)
    )
    return list(rows.all())
