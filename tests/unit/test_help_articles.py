"""The help articles as data (HLP-1): every requirement answered, every article whole in three languages,
a broken file refused with its name; the search's query building never lets syntax through."""

from __future__ import annotations

from pathlib import Path

import pytest

from carlink.help.articles import ArticleError, blocks, load_article, load_articles
from carlink.help.requirements import REQUIREMENT_IDS, TOPICS
from carlink.help.search import PG_DOCUMENT, Term, _from_text, bigrams, fts5_query, terms, tsquery
from carlink.help.stopwords import STOP_WORDS
from carlink.i18n import LANGUAGES

REQUIREMENTS = Path(__file__).parents[2].parent / "shared" / "REQUIREMENTS.md"
MIGRATION = Path(__file__).parents[2] / "src/carlink/db/migrations/versions/0007_help_centre.py"

GOOD = """
covers = ["ACC-1"]
topic = "account"
order = 1
link = "/vehicles/{vin}/services"
[en]
title = "T"
summary = "S"
body = "B"
link_label = "L"
[de]
title = "T"
summary = "S"
body = "B"
link_label = "L"
[ja]
title = "T"
summary = "S"
body = "B"
link_label = "L"
"""


def test_every_requirement_is_answered_by_an_article() -> None:
    # REQ: HLP-1 — passes once every area's articles are written.
    covered = {requirement for article in load_articles() for requirement in article.covers}
    assert sorted(set(REQUIREMENT_IDS) - covered) == []


def test_the_package_knows_the_requirement_ids_of_the_requirements_list() -> None:
    if not REQUIREMENTS.exists():
        pytest.skip("the shared requirements list is not beside this checkout")
    import re

    listed = re.findall(r"\*\*([A-Z]{3}-\d+)\*\*", REQUIREMENTS.read_text(encoding="utf-8"))
    assert sorted(listed) == sorted(REQUIREMENT_IDS)


def test_articles_are_whole_in_every_language_with_a_portal_link() -> None:
    articles = load_articles()
    assert len({article.slug for article in articles}) == len(articles)
    for article in articles:
        assert article.topic in TOPICS and article.link.startswith("/")
        for language in LANGUAGES:
            text = article.texts[language]
            assert text.title and text.summary and text.link_label and blocks(text.body), (
                article.slug,
                language,
            )


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.replace('["ACC-1"]', '["ACC-99"]'), "unknown requirement IDs"),
        (lambda s: s.replace('"account"', '"cooking"'), "'topic'"),
        (lambda s: s.replace('"/vehicles/{vin}/services"', '"https://example.com/x"'), "'link'"),
        (lambda s: s.replace('"/vehicles/{vin}/services"', '"//example.com"'), "'link'"),
        (lambda s: s.replace('"/vehicles/{vin}/services"', '"/vehicles/{car}"'), "'link'"),
        (lambda s: s[: s.index("[ja]")], "[ja] table is missing"),
        (lambda s: s.replace('link_label = "L"\n[de]', "[de]"), "[en] needs ['link_label']"),
        (lambda s: s.replace("order = 1", 'order = "1"'), "'order'"),
        (lambda s: s + "colour = 1\n", "unknown keys"),
        (lambda s: s.replace("covers =", "covers = = "), "not valid TOML"),
    ],
)
def test_a_broken_article_is_refused_with_its_file_name(tmp_path: Path, change: object, problem: str) -> None:
    assert load_article(_write(tmp_path, "fine-article.toml", GOOD)).per_vehicle
    path = _write(tmp_path, "broken-article.toml", change(GOOD))  # type: ignore[operator]
    with pytest.raises(ArticleError) as raised:
        load_article(path)
    assert str(raised.value).startswith("broken-article.toml: ") and problem in str(raised.value)


def test_a_file_name_must_be_a_slug(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match=r"Bad_Name\.toml"):
        load_article(_write(tmp_path, "Bad_Name.toml", GOOD))


def test_body_paragraphs_and_lists() -> None:
    body = "First line\nsame paragraph.\n\nSteps:\n- one\n- two\n  continued\n\n最初の行\n続きです。"
    parsed = blocks(body)
    assert [b.text for b in parsed] == ["First line same paragraph.", "Steps:", "", "最初の行続きです。"]
    assert parsed[2].items == ("one", "two continued")


def test_japanese_runs_become_bigrams_and_queries_become_quoted_terms() -> None:
    # Each run ends with its last character alone: every character starts a gram (one-character queries).
    assert bigrams("車両を解錠します。PIN") == "車両 両を を解 解錠 錠し しま ます す"
    assert bigrams("鍵", "車の鍵") == "鍵 車の の鍵 鍵"
    # A Latin word written against Japanese is one word to the tokenizers: it is stored on its own too.
    assert bigrams("暗証PINを入力", "PIN code") == "暗証 証 PIN を入 入力 力"
    words = terms('解錠 "AND" NEAR( * -PIN) charging\x00')
    assert [(t.word, t.cjk) for t in words] == [
        ("解錠", True),
        ("and", False),
        ("near", False),
        ("pin", False),
        ("charging", False),
    ]
    assert fts5_query(words) == 'bigrams : "解錠" AND "and"* AND "near"* AND "pin"* AND "charging"*'
    assert tsquery(words, every=False) == "('解錠') | 'and':* | 'near':* | 'pin':* | 'charging':*"
    assert terms("\"'*()-:^ ") == [] and len(terms("word " * 100)) <= 12
    assert terms("x" * 500)[0].word == "x" * 200


def test_a_one_character_japanese_query_is_a_prefix_of_the_grams_on_both_databases() -> None:
    # REQ: HLP-1 — "鍵" or "車" alone finds the texts that contain it, wherever it stands in a run.
    words = terms("鍵")
    assert words == [Term("鍵", True)]
    assert fts5_query(words) == 'bigrams : "鍵"*'
    assert tsquery(words) == "'鍵':*"
    assert tsquery(terms("車 解錠")) == "'車':* & ('解錠')"


def test_queries_and_indexed_texts_are_nfkc_normalised() -> None:
    # Full-width Latin from a Japanese input method, half-width katakana, full-width digits.
    assert [(t.word, t.cjk) for t in terms("ＰＩＮ ｅＳＩＭ ﾛｰﾐﾝｸﾞ １２３")] == [
        ("pin", False),
        ("esim", False),
        ("ローミング", True),
        ("123", False),
    ]
    assert bigrams("ﾛｰﾐﾝｸﾞ") == bigrams("ローミング") == "ロー ーミ ミン ング グ"
    # The snippet is cut from the text as written, found through its normal form.
    snippet = _from_text("Geben Sie die ＰＩＮ ein.", terms("pin"))
    assert snippet is not None and ("ＰＩＮ", True) in snippet


def test_stop_words_are_dropped_from_queries_on_both_databases() -> None:
    # PostgreSQL drops them from its English and German index; SQLite keeps every word. Dropping them from the
    # query makes both find the same: nothing for a query of stop words only.
    assert terms("it is the", "en") == [] and terms("Die der und", "de") == []
    assert [t.word for t in terms("Die Passwort", "de")] == ["passwort"]
    assert [t.word for t in terms("die", "en")] == ["die"]  # not an English stop word
    assert [t.word for t in terms("の 車", "ja")] == ["の", "車"]  # Japanese keeps every word
    assert {"it", "the"} <= STOP_WORDS["en"] and {"die", "und"} <= STOP_WORDS["de"]


def test_the_migration_indexes_the_expressions_the_search_queries() -> None:
    source = MIGRATION.read_text(encoding="utf-8")
    for document in PG_DOCUMENT.values():
        for line in document.split(" || "):
            assert line in source
