"""Jinja2 templates of the portal and the sign-in pages, in the request's language (carlink.i18n)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from carlink import i18n
from carlink.catalog.money import format_money

WEB_TEMPLATES = Path(__file__).parent / "templates"


@pass_context
def _gettext(context: Context, message: str) -> str:
    return _catalogue(context).ugettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    return _catalogue(context).ungettext(singular, plural, count)


def _catalogue(context: Context) -> Translations:
    """The catalogue of the template being rendered (its domain first, then all: carlink.i18n.DOMAINS)."""
    return i18n.translations(i18n.current(), _domain(context.name))


@cache
def _domain(template: str | None) -> str | None:
    return i18n.domain_of(f"web/templates/{template}") if template else None


def _money(amount_minor: int, currency: str) -> str:
    return format_money(amount_minor, currency, i18n.current())


def portal_templates(*directories: Path) -> Jinja2Templates:
    """Templates with gettext (``{% trans %}``, ``_()``) and the current language's formats: ``lang``,
    and the filters ``number``, ``date``, ``datetime``, ``time`` and ``money`` (minor units, currency)."""
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
