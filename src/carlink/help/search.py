"""Full-text search over the help articles, in the reader's language, on SQLite (FTS5) or PostgreSQL.

A query is never handed to the database's query syntax as typed: it is cut to `MAX_QUERY` characters and
split into words (letters and digits), and each word becomes a quoted term, so quotes, ``AND``, ``NEAR(``,
``*``, parentheses or a minus sign are only words or nothing. Latin words match as prefixes of the stemmed
index terms (English stems on both databases, German stems on PostgreSQL). Japanese has no spaces, so a run
of Japanese characters becomes the phrase of its character bigrams, matched against the bigrams stored for
each article (`bigrams`); "解錠" then finds a sentence containing 「車両を解錠します」. A single character
("鍵", "車") matches as a prefix of those grams; every run also stores its last character alone, so every
character of a text starts some gram and a one-character query finds it wherever it stands.

Queries and indexed texts are NFKC-normalised (`normalise`), so full-width Latin typed with a Japanese input
method ("ＰＩＮ") finds "PIN" and half-width katakana ("ﾛｰﾐﾝｸﾞ") finds "ローミング". The stop words of
PostgreSQL's English and German configurations are dropped from every query on both databases
(help.stopwords): SQLite would otherwise find "it" or "die" where PostgreSQL cannot, and a query of stop
words only finds nothing on either.

All words must match; when that finds nothing, any word may (the results are ranked either way).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.help.articles import CJK, plain_text
from carlink.help.stopwords import STOP_WORDS

MAX_QUERY = 200
MAX_TERMS = 12
MAX_LIMIT = 50
PREFIX_FROM = 3  # shorter words match whole words only, or "a" would find everything
MARK_START, MARK_END = "\u27ea", "\u27eb"  # never in an article (help.articles)
_WORD = re.compile(r"[^\W_]+")
_CJK_RUN = re.compile(f"(?:{CJK.pattern})+")
_SPACE = re.compile(r"\s+")
_LIST_ITEM = re.compile(r"(?:^|\n)[ \t]*- ")
SNIPPET_WIDTH = 120

# Must stay identical to the expressions of the GIN indexes in migration 0007. The texts are indexed
# NFKC-normalised (`normalise`); `bigrams` is normalised already when it is written.
PG_CONFIG = {"en": "english", "de": "german", "ja": "simple"}
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


@dataclass(frozen=True)
class Term:
    word: str
    cjk: bool

    @property
    def grams(self) -> list[str]:
        return (
            [self.word] if len(self.word) == 1 else [self.word[i : i + 2] for i in range(len(self.word) - 1)]
        )


@dataclass(frozen=True)
class Hit:
    slug: str
    language: str
    topic: str
    title: str
    summary: str
    link: str
    # The snippet as parts: (text, is a hit).
    snippet: tuple[tuple[str, bool], ...]
    rank: float

    @property
    def snippet_text(self) -> str:
        return "".join(part for part, _ in self.snippet)


def normalise(value: str) -> str:
    """NFKC: full-width Latin and digits become ASCII, half-width katakana becomes full-width."""
    return unicodedata.normalize("NFKC", value)


def bigrams(*texts: str) -> str:
    """The overlapping character pairs of every run of Japanese (CJK) characters of the normalised texts,
    space-separated, each run followed by its last character alone (so that every character starts a gram,
    for one-character queries). A Latin word written against Japanese ("のPIN") is one word to both
    databases' tokenizers; it is added here on its own, so that "PIN" finds it."""
    grams: list[str] = []
    for value in texts:
        for word in _WORD.findall(normalise(value)):
            for piece in re.split(f"({_CJK_RUN.pattern})", word):
                if not piece:
                    continue
                if _CJK_RUN.fullmatch(piece):
                    grams.extend(Term(piece, True).grams)
                    if len(piece) > 1:
                        grams.append(piece[-1])
                elif piece != word:
                    grams.append(piece)
    return " ".join(grams)


def terms(query: str, language: str | None = None) -> list[Term]:
    """The words of a query: NFKC-normalised, letters and digits only, lowercased, Japanese runs apart from
    Latin ones, without the stop words of `language`."""
    stop = STOP_WORDS.get(language or "", frozenset())
    found: list[Term] = []
    for word in _WORD.findall(normalise(query[:MAX_QUERY].replace("\x00", " "))):
        for piece in re.split(f"({_CJK_RUN.pattern})", word.lower()):
            cjk = bool(_CJK_RUN.fullmatch(piece))
            if piece and (cjk or piece not in stop) and Term(piece, cjk) not in found:
                found.append(Term(piece, cjk))
    return found[:MAX_TERMS]


async def search(session: AsyncSession, language: str | None, query: str, limit: int = 10) -> list[Hit]:
    """Articles in `language` (one of ours, else English) matching `query`, best first; an empty,
    punctuation-only or stop-word-only query finds nothing."""
    language = i18n.supported(language) or i18n.DEFAULT_LANGUAGE
    words = terms(query, language)
    if not words:
        return []
    limit = max(1, min(limit, MAX_LIMIT))
    run = _postgres if session.get_bind().dialect.name == "postgresql" else _sqlite
    hits = await run(session, language, words, limit, every=True)
    if not hits and len(words) > 1:
        hits = await run(session, language, words, limit, every=False)
    return hits


# --- SQLite: FTS5 -------------------------------------------------------------------------------------


def fts5_query(words: list[Term], *, every: bool = True) -> str:
    parts = []
    for term in words:
        if term.cjk:
            grams = term.grams
            phrase = f'"{grams[0]}"*' if len(term.word) == 1 else '"' + " ".join(grams) + '"'
            parts.append(f"bigrams : {phrase}")
        else:
            parts.append(f'"{term.word}"*' if len(term.word) >= PREFIX_FROM else f'"{term.word}"')
    return (" AND " if every else " OR ").join(parts)


async def _sqlite(
    session: AsyncSession, language: str, words: list[Term], limit: int, *, every: bool
) -> list[Hit]:
    # Japanese snippets are cut in Python on both databases, from the text as written (help_search holds it
    # normalised).
    snippet = "''" if language == "ja" else f"snippet(help_search, 2, '{MARK_START}', '{MARK_END}', '…', 18)"
    rows = await session.execute(
        text(
            "SELECT a.slug, a.topic, a.title, a.summary, a.body, a.link, "
            "bm25(help_search, 10.0, 4.0, 1.0, 2.0) AS rank, "
            f"{snippet} AS snip "
            "FROM help_search JOIN help_articles a ON a.id = help_search.rowid "
            "WHERE help_search MATCH :match AND a.language = :language "
            'ORDER BY rank, a."order", a.slug LIMIT :limit'
        ),
        {"match": fts5_query(words, every=every), "language": language, "limit": limit},
    )
    return [
        _hit(language, words, slug, topic, title, summary, body, link, -float(rank), snip)
        for slug, topic, title, summary, body, link, rank, snip in rows.all()
    ]


# --- PostgreSQL: tsvector and GIN ------------------------------------------------------------------------


def tsquery(words: list[Term], *, every: bool = True) -> str:
    parts = []
    for term in words:
        if term.cjk and len(term.word) > 1:
            parts.append("(" + " <-> ".join(f"'{gram}'" for gram in term.grams) + ")")
        elif term.cjk:
            parts.append(f"'{term.word}':*")  # as on SQLite: any gram starting with the character
        else:
            parts.append(f"'{term.word}':*" if len(term.word) >= PREFIX_FROM else f"'{term.word}'")
    return (" & " if every else " | ").join(parts)


async def _postgres(
    session: AsyncSession, language: str, words: list[Term], limit: int, *, every: bool
) -> list[Hit]:
    # `language` is one of ours (checked in `search`), so it can be part of the statement: the partial
    # index's condition must be visible to the planner.
    document, config = PG_DOCUMENT[language], PG_CONFIG[language]
    headline = (
        "''"
        if language == "ja"
        else f"ts_headline('{config}'::regconfig, body, q, "
        f"'StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=10, MaxFragments=1')"
    )
    rows = await session.execute(
        text(
            f"SELECT slug, topic, title, summary, body, link, ts_rank({document}, q) AS rank, "
            f"{headline} AS snip "
            f"FROM help_articles, to_tsquery('{config}'::regconfig, :query) AS q "
            f"WHERE language = '{language}' AND ({document}) @@ q "
            'ORDER BY rank DESC, "order", slug LIMIT :limit'
        ),
        {"query": tsquery(words, every=every), "limit": limit},
    )
    return [
        _hit(language, words, slug, topic, title, summary, body, link, float(rank), snip)
        for slug, topic, title, summary, body, link, rank, snip in rows.all()
    ]


# --- snippets ------------------------------------------------------------------------------------------


def _hit(
    language: str,
    words: list[Term],
    slug: str,
    topic: str,
    title: str,
    summary: str,
    body: str,
    link: str,
    rank: float,
    marked: str | None,
) -> Hit:
    snippet = _from_marks(marked or "")
    if snippet is None:
        # Japanese (no word boundaries for the database to mark), or the words matched only the title.
        snippet = _from_text(plain_text(body), words) or ((summary, False),)
    return Hit(slug, language, topic, title, summary, link, snippet, rank)


def _from_marks(marked: str) -> tuple[tuple[str, bool], ...] | None:
    marked = _SPACE.sub(" ", _LIST_ITEM.sub(" ", marked)).strip()
    if MARK_START not in marked:
        return None
    parts: list[tuple[str, bool]] = []
    for piece in re.split(f"({MARK_START}[^{MARK_END}]*{MARK_END})", marked):
        if piece.startswith(MARK_START):
            parts.append((piece[1:-1], True))
        elif piece:
            parts.append((piece, False))
    return tuple(parts)


def _searchable(body: str) -> str:
    """The body normalised and lowercased character by character, so that positions stay those of `body`
    (a character whose normal form is longer or shorter keeps its own form)."""
    folded = []
    for character in body:
        normal = normalise(character).lower()
        folded.append(normal if len(normal) == 1 else character.lower()[:1] or character)
    return "".join(folded)


def _from_text(body: str, words: list[Term]) -> tuple[tuple[str, bool], ...] | None:
    """A window of the body around the first word found, with every found word marked."""
    lowered = _searchable(body)
    pattern = "|".join(re.escape(term.word) for term in sorted(words, key=lambda t: -len(t.word)))
    first = re.search(pattern, lowered)
    if first is None:
        return None
    start = max(0, first.start() - SNIPPET_WIDTH // 4)
    end = min(len(body), start + SNIPPET_WIDTH)
    parts: list[tuple[str, bool]] = [("…", False)] if start else []
    position = start
    for found in re.finditer(pattern, lowered[start:end]):
        begin, finish = start + found.start(), start + found.end()
        if begin > position:
            parts.append((body[position:begin], False))
        parts.append((body[begin:finish], True))
        position = finish
    if end > position:
        parts.append((body[position:end], False))
    if end < len(body):
        parts.append(("…", False))
    return tuple(parts)
