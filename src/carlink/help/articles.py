"""Loading and validating the help articles (``articles/<slug>.toml``, one file per article).

A file names the requirement IDs it answers, its topic, its place in the topic and the portal page that does
the thing, and holds the same four texts in each language. Anything wrong is an `ArticleError` naming the
file, raised at start-up: a help centre with a broken article must not start quietly without it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from carlink.help.requirements import REQUIREMENT_IDS, TOPICS
from carlink.i18n import LANGUAGES

ARTICLE_DIR = Path(__file__).parent / "articles"
TEXT_KEYS = ("title", "summary", "body", "link_label")
TOP_KEYS = {"covers", "topic", "order", "link", *LANGUAGES}
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# A path on this site; "{vin}" stands for each car of the reader.
LINK = re.compile(
    r"/(?:[A-Za-z0-9._~-]+|\{vin\})?(?:/(?:[A-Za-z0-9._~-]+|\{vin\}))*(?:\?[A-Za-z0-9._~=&-]*)?"
)
VIN_PLACEHOLDER = "{vin}"
# The search marks its hits with these; an article must not contain them (help.search).
RESERVED_CHARACTERS = ("\u27ea", "\u27eb")
# Part of every content hash: raise it when what is stored for the search changes (help.search: the
# normalisation, the bigrams), so that the next start rewrites every row and its index entries.
INDEX_FORMAT = 2
MAX_TITLE = 120
MAX_SUMMARY = 300


class ArticleError(ValueError):
    """A help article file that cannot be used; the message starts with the file's name."""


@dataclass(frozen=True)
class ArticleText:
    title: str
    summary: str
    body: str
    link_label: str


@dataclass(frozen=True)
class Article:
    slug: str
    covers: tuple[str, ...]
    topic: str
    order: int
    link: str
    texts: dict[str, ArticleText]

    @property
    def per_vehicle(self) -> bool:
        return VIN_PLACEHOLDER in self.link

    def content_hash(self, language: str) -> str:
        """Changes whenever anything stored for this article in `language` changes."""
        text = self.texts[language]
        content = [INDEX_FORMAT, self.slug, language, self.topic, self.order, self.link, list(self.covers)]
        content += [getattr(text, key) for key in TEXT_KEYS]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Block:
    """A paragraph (`items` empty) or a list (`text` empty) of an article's body."""

    text: str = ""
    items: tuple[str, ...] = ()


def blocks(body: str) -> list[Block]:
    """Paragraphs are separated by blank lines; a line starting with "- " is a list item, and an indented
    line right after an item continues it. A list may follow its paragraph's last line directly."""
    found: list[Block] = []
    for chunk in re.split(r"\n[ \t]*\n", body.strip("\n")):
        paragraph: list[str] = []
        items: list[list[str]] = []
        for raw in chunk.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("- "):
                if paragraph:
                    found.append(Block(text=_join(paragraph)))
                    paragraph = []
                items.append([line[2:].strip()])
            elif items and raw[:1] in (" ", "\t"):
                items[-1].append(line)
            else:
                if items:
                    found.append(Block(items=tuple(_join(item) for item in items)))
                    items = []
                paragraph.append(line)
        if items:
            found.append(Block(items=tuple(_join(item) for item in items)))
        if paragraph:
            found.append(Block(text=_join(paragraph)))
    return found


def plain_text(body: str) -> str:
    """The body as one line of text, for snippets."""
    return " ".join(block.text or " ".join(block.items) for block in blocks(body))


def _join(lines: list[str]) -> str:
    """Wrapped lines of a paragraph; Japanese has no spaces between words, so none is added between two
    Japanese characters."""
    joined = lines[0]
    for line in lines[1:]:
        joined += line if _is_cjk(joined[-1]) and _is_cjk(line[0]) else " " + line
    return joined


def _is_cjk(character: str) -> bool:
    return bool(CJK.match(character) or _WIDE_PUNCTUATION.match(character))


_WIDE_PUNCTUATION = re.compile(r"[\u3000-\u303f\uff01-\uff65]")
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\u3005\u30fc]")


@cache
def load_articles(directory: Path = ARTICLE_DIR) -> tuple[Article, ...]:
    """Every article, in topic order, then by its place in the topic and its slug."""
    articles: list[Article] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.toml")):
        article = load_article(path)
        if article.slug in seen:
            raise ArticleError(f"{path.name}: the slug {article.slug!r} is used twice")
        seen.add(article.slug)
        articles.append(article)
    topics = list(TOPICS)
    return tuple(sorted(articles, key=lambda a: (topics.index(a.topic), a.order, a.slug)))


def load_article(path: Path) -> Article:
    name = path.name
    slug = path.stem
    if not SLUG.fullmatch(slug):
        raise ArticleError(f"{name}: the file name must be lowercase words joined by dashes")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ArticleError(f"{name}: not valid TOML: {error}") from error
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ArticleError(f"{name}: unknown keys {sorted(unknown)}")
    covers = data.get("covers")
    if not isinstance(covers, list) or not covers or not all(isinstance(c, str) for c in covers):
        raise ArticleError(f"{name}: 'covers' must be a non-empty list of requirement IDs")
    unknown_ids = [c for c in covers if c not in REQUIREMENT_IDS]
    if unknown_ids:
        raise ArticleError(f"{name}: unknown requirement IDs {unknown_ids}")
    topic = data.get("topic")
    if topic not in TOPICS:
        raise ArticleError(f"{name}: 'topic' must be one of {list(TOPICS)}")
    order = data.get("order")
    if not isinstance(order, int) or isinstance(order, bool):
        raise ArticleError(f"{name}: 'order' must be a whole number")
    link = data.get("link")
    if not isinstance(link, str) or not LINK.fullmatch(link) or "//" in link:
        raise ArticleError(
            f"{name}: 'link' must be a path of the portal such as /account or /vehicles/{{vin}}"
        )
    texts = {language: _texts(name, language, data.get(language)) for language in LANGUAGES}
    return Article(slug=slug, covers=tuple(covers), topic=str(topic), order=order, link=link, texts=texts)


def _texts(name: str, language: str, table: object) -> ArticleText:
    if not isinstance(table, dict):
        raise ArticleError(f"{name}: the [{language}] table is missing")
    missing = [key for key in TEXT_KEYS if not isinstance(table.get(key), str) or not table[key].strip()]
    if missing:
        raise ArticleError(f"{name}: [{language}] needs {missing} as non-empty text")
    unknown = set(table) - set(TEXT_KEYS)
    if unknown:
        raise ArticleError(f"{name}: [{language}] has unknown keys {sorted(unknown)}")
    values = {key: str(table[key]).strip() for key in TEXT_KEYS}
    for key, value in values.items():
        if any(character in value for character in RESERVED_CHARACTERS) or "\x00" in value:
            raise ArticleError(f"{name}: [{language}] {key} holds a character the search reserves")
        if key != "body" and "\n" in value:
            raise ArticleError(f"{name}: [{language}] {key} must be one line")
    if len(values["title"]) > MAX_TITLE:
        raise ArticleError(f"{name}: [{language}] title is longer than {MAX_TITLE} characters")
    if len(values["summary"]) > MAX_SUMMARY:
        raise ArticleError(f"{name}: [{language}] summary is longer than {MAX_SUMMARY} characters")
    return ArticleText(**values)
