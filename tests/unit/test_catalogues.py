"""Every text of the portal has its Japanese and German translation (carlink.i18n, tools/catalogs.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from carlink import i18n
from carlink.errors import NotFound

_spec = importlib.util.spec_from_file_location(
    "catalogs", Path(__file__).resolve().parents[2] / "tools" / "catalogs.py"
)
assert _spec and _spec.loader
catalogs = importlib.util.module_from_spec(_spec)
sys.modules["catalogs"] = catalogs
_spec.loader.exec_module(catalogs)


def test_every_text_has_a_translation_in_every_language() -> None:
    problems = catalogs.problems()
    assert not problems, f"{len(problems)} texts lack a translation:\n" + "\n".join(problems[:60])


def test_texts_come_from_the_templates_and_the_code() -> None:
    found = catalogs.texts_by_domain()
    portal = {text.msgid for text in found["portal"]}
    assert "no vehicle %(vin)s in your garage" in portal  # an error class's message
    assert "Skip to the content" in portal  # a template's {% trans %}


def test_a_formatted_message_is_refused() -> None:
    # What no catalogue can hold: an f-string or a %-formatted string given to an error or to _().
    source = (
        'raise NotFound(f"no car {vin}")\n'
        'raise Conflict("late: %s" % when, code="late")\n'
        '_("%(vin)s is parked", vin=vin)\n'
        'raise OAuthError("invalid_grant", "expired")\n'
        'raise CarlinkError(str(exc), code="invalid_vin")\n'
        'raise NotFound(MESSAGES.get(kind, N_("gone")), code="gone")\n'
        'raise CarlinkError(str(exc), code="wire")  # untranslated: the maker\'s wire contract\n'
    )
    found = catalogs.formatted_calls(source, catalogs.python_keywords())
    assert found == [(1, "NotFound"), (2, "Conflict"), (5, "CarlinkError")]


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("ja-JP,ja;q=0.9,en;q=0.8", "ja"),
        ("fr-FR, de;q=0.7, en;q=0.5", "de"),
        ("en-US,en;q=0.9", "en"),
        ("fr, es", "en"),
        ("", "en"),
        ("de;q=0.2, ja;q=0.8", "ja"),
        ("de;q=abc, ja;q=0.1", "ja"),
    ],
)
def test_the_browser_language_is_negotiated(header: str, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_an_error_speaks_the_current_language() -> None:
    error = NotFound("no vehicle %(vin)s in your garage", vin="WP0ZZZ99ZTS392124")
    assert str(error) == "no vehicle WP0ZZZ99ZTS392124 in your garage"
    i18n.use("de")
    try:
        assert "WP0ZZZ99ZTS392124" in error.message
        assert error.message != str(error)
    finally:
        i18n.use("en")
    assert error.message == str(error)
