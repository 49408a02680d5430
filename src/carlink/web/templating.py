"""Jinja2 templates of the portal and the sign-in pages, in the request's language (carlink.i18n)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from carlink import i18n
from carlink.catalog.money import format_money

WEB_TEMPLATES = Path(__file__).parent / "templates"


def _gettext(message: str) -> str:
    return i18n.translations(i18n.current()).ugettext(message)


def _ngettext(singular: str, plural: str, count: int) -> str:
    return i18n.translations(i18n.current()).ungettext(singular, plural, count)


def _money(amount_minor: int, currency: str) -> str:
    return format_money(amount_minor, currency, i18n.current())


def portal_templates(*directories: Path) -> Jinja2Templates:
    """Templates with gettext (``{% trans %}``, ``_()``), ``current_language()``, the language names, and
    the current language's filters ``number``, ``date``, ``datetime``, ``time``, ``money`` (minor units)."""
    templates = Jinja2Templates(directory=[str(d) for d in (*directories, WEB_TEMPLATES)])
    env = templates.env
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True  # a {% trans %} block's line breaks are not part of the text
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["languages"] = i18n.LANGUAGE_NAMES
    env.globals["current_language"] = i18n.current
    env.filters.update(
        number=i18n.number, date=i18n.date, datetime=i18n.datetime, time=i18n.time, money=_money
    )
    return templates


TEMPLATES = portal_templates()


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)
