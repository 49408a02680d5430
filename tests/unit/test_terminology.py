"""One name for one thing (review of issue 8, findings 5 and 12).

A shared template (`base.html`, `_macros.html`, `_status.html`) looks its texts up in the catalogue of the
page that includes it, so a text translated differently in two domains changes its name from page to page.
Every text therefore has one translation per language across all domains. Where one English text really has
two meanings, the English text must differ: until the code says so, those texts are listed in `TWO_MEANINGS`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from carlink import i18n

ARTICLES = Path(i18n.__file__).parent / "help" / "articles"
TRANSLATED = tuple(language for language in i18n.LANGUAGES if language != i18n.DEFAULT_LANGUAGE)

# English texts with two meanings, translated differently on purpose: each must be reworded in the code (or
# get a msgctxt), then leave this list.
TWO_MEANINGS: dict[str, str] = {}

# Names that the portal does not use: the catalogues and the help articles say the portal's word instead.
RETIRED_TERMS = {
    "de": {
        "Privatmodus": "Privatsphäre-Modus",
        "Mitnutzer": "Weiterer Nutzer",
        "Fernfunktion": "Ferndienste",
        "Functions on Demand": "Funktionen auf Abruf",
        "Funktionen on Demand": "Funktionen auf Abruf",
        "Konnektivität": "So geht dieses Fahrzeug online",
    },
    "ja": {
        "あなた": "お客様 (or no pronoun)",
        "カーセキュリティ": "車両セキュリティ",
        "ファンクション・オン・デマンド": "オンデマンド機能",
        "コネクティビティ": "この車両のインターネット接続",
        "機能と更新": "機能とアップデート",
    },
}


@cache
def catalogues(language: str) -> dict[str, Catalog]:
    found = {}
    for path in sorted((i18n.LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as source:
            found[path.stem] = read_po(source, locale=language, domain=path.stem)
    return found


def _text(message: Message) -> str:
    """A translation as one string (a plural's forms joined)."""
    if isinstance(message.string, str):
        return message.string
    return " | ".join(message.string or ())


def _translations(language: str) -> dict[tuple[str, str | None], dict[str, str]]:
    """Each (msgid, msgctxt) with its translation in every domain that has it."""
    found: dict[tuple[str, str | None], dict[str, str]] = defaultdict(dict)
    for domain, catalogue in catalogues(language).items():
        for message in catalogue:
            if not message.id or not message.string:
                continue
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            found[(msgid, message.context)][domain] = _text(message)
    return found


@pytest.mark.parametrize("language", TRANSLATED)
def test_a_text_has_one_translation_in_every_domain(language: str) -> None:
    different = {
        key: by_domain
        for key, by_domain in _translations(language).items()
        if len(set(by_domain.values())) > 1 and key[0] not in TWO_MEANINGS
    }
    assert not different, (
        f"{len(different)} texts are translated differently by domain in {language}:\n"
        + "\n".join(f"  {msgid!r}: {by_domain}" for (msgid, _context), by_domain in different.items())
    )


def test_the_two_meanings_list_holds_only_texts_that_still_differ() -> None:
    # A text the code has reworded, or whose translations were made equal, leaves the list.
    still_different = set()
    for language in TRANSLATED:
        for (msgid, _context), by_domain in _translations(language).items():
            if len(set(by_domain.values())) > 1:
                still_different.add(msgid)
    assert set(TWO_MEANINGS) <= still_different, set(TWO_MEANINGS) - still_different


def _article_texts(language: str) -> dict[str, str]:
    texts = {}
    for path in sorted(ARTICLES.glob("*.toml")):
        table = tomllib.loads(path.read_text(encoding="utf-8"))[language]
        texts[path.name] = "\n".join(str(value) for value in table.values())
    return texts


@pytest.mark.parametrize("language", TRANSLATED)
def test_retired_names_appear_in_no_catalogue_and_no_help_article(language: str) -> None:
    places = {
        f"{domain}.po": "\n".join(_text(message) for message in catalogue if message.id)
        for domain, catalogue in catalogues(language).items()
    }
    places.update(_article_texts(language))
    found = [
        f"{name}: {term!r} (say {instead!r})"
        for name, text in places.items()
        for term, instead in RETIRED_TERMS[language].items()
        if term in text
    ]
    assert not found, "\n".join(found)


def _error_messages() -> set[str]:
    spec = importlib.util.spec_from_file_location(
        "catalogs", Path(__file__).resolve().parents[2] / "tools" / "catalogs.py"
    )
    assert spec and spec.loader
    catalogs = sys.modules.get("catalogs")
    if catalogs is None:
        catalogs = importlib.util.module_from_spec(spec)
        sys.modules["catalogs"] = catalogs
        spec.loader.exec_module(catalogs)
    from babel.messages.extract import extract_from_file

    errors = {
        name: positions
        for name, positions in catalogs.python_keywords().items()
        if name not in catalogs.GETTEXT_KEYWORDS
    }
    messages = set()
    for path in catalogs.translated_files():
        if path.suffix == ".py":
            for _line, message, _comments, _context in extract_from_file(
                "python", str(path), keywords=errors
            ):
                if isinstance(message, str) and message:
                    messages.add(message)
    return messages


def test_japanese_error_messages_are_whole_sentences() -> None:
    # Finding 12: the portal's errors ended without 。, the store's with it.
    errors = _error_messages()
    assert "no vehicle %(vin)s in your garage" in errors
    unfinished = [
        f"{domain}: {message.id!r} → {message.string!r}"
        for domain, catalogue in catalogues("ja").items()
        for message in catalogue
        if isinstance(message.id, str) and message.id in errors and not _text(message).endswith("。")
    ]
    assert not unfinished, "\n".join(unfinished)


def test_german_addresses_the_reader_formally() -> None:
    informal = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)
    found = [
        f"{domain}: {message.string!r}"
        for domain, catalogue in catalogues("de").items()
        for message in catalogue
        if isinstance(message.string, str) and informal.search(message.string)
    ]
    found += [name for name, text in _article_texts("de").items() if informal.search(text)]
    assert not found, "\n".join(found)
