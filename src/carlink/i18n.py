"""The portal's languages (Japanese, English, German): Babel catalogues and the language of each request.

Texts are written in English in the code and the templates and looked up in gettext catalogues
(``src/carlink/locale/<language>/LC_MESSAGES/<domain>.po``). Each part of the platform has its own domain
(`DOMAINS`), so that the people working on different parts do not edit the same file; at run time the
domains of a language are merged into one catalogue.

The language of a request is the signed-in person's profile language, else the best match of the browser's
``Accept-Language``, else English (`negotiate`, `use`). It lives in a context variable, so code deep in a
unit of work (an error's message, a label) speaks the person's language without passing it around.

Marking texts:
- templates: ``{% trans %}…{% endtrans %}`` or ``{{ _("…") }}`` (named values: ``_("%(vin)s", vin=vin)``);
- Python: `_` (translate now) or `N_` (mark a constant; translate where it is shown with `_`);
- errors: the first argument of `carlink.errors.CarlinkError` and its subclasses is the message with
  ``%(name)s`` placeholders and the values as keywords; the message is translated when it is read.

`tools/catalogs.py` extracts the texts (``make catalogs``) and compiles the catalogues (``make install``);
`tests/unit/test_catalogues.py` fails when a text has no translation.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime, format_time, get_timezone
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LANGUAGES = ("en", "de", "ja")
DEFAULT_LANGUAGE = "en"
# The Babel locale each language formats money, dates and numbers in.
BABEL_LOCALES = {"en": "en_GB", "de": "de_DE", "ja": "ja_JP"}
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "ja": "日本語"}
LOCALE_DIR = Path(__file__).parent / "locale"

# Which catalogue (domain) a source file's texts go to: the first prefix (relative to src/carlink) that
# matches; everything else is "portal".
DOMAINS: dict[str, tuple[str, ...]] = {
    "security": (
        "security/",
        "web/templates/security/",
        "web/templates/soc/",
        "web/templates/dealer/driver_cards.html",
        "web/templates/dealer/security_modes.html",
    ),
    "staff": (
        "web/templates/dealer/",
        "web/templates/operator/",
        "partners/console.py",
        "privacy/console.py",
        "fod/console.py",
    ),
    "store": ("store/", "fod/", "catalog/", "web/templates/store/", "web/templates/fod/"),
    "partners": ("partners/", "privacy/", "web/templates/partners/", "web/templates/privacy/"),
    "help": ("help/", "web/templates/help/"),
    "connectivity": ("connectivity/", "web/templates/connectivity/"),
    "portal": ("",),
}
# Files whose texts are not the portal's: the car simulator, the wire protocol, the compat facade (whose
# messages are part of the maker's wire contract and stay as the clients know them), the mails (one template
# per language in notify/templates), the demo's stand-ins for the car's screen and a mailbox, and the command
# line.
NOT_TRANSLATED = (
    "sim/",
    "protocol/",
    "compat/",
    "gateway/",
    "demo/",
    "db/migrations/",
    "cli.py",
    "fod/cli.py",
    "privacy/cli.py",
)
# ...except the model catalogue's names of generations, which the portal shows (marked N_ there).
TRANSLATED_DATA = ("protocol/catalogue.py",)

_language: ContextVar[str] = ContextVar("carlink_language", default=DEFAULT_LANGUAGE)


def domain_of(relative_path: str) -> str:
    for domain, prefixes in DOMAINS.items():
        if any(relative_path.startswith(prefix) for prefix in prefixes):
            return domain
    return "portal"


def supported(language: str | None) -> str | None:
    """``de-AT``, ``de_DE`` and ``DE`` give ``de``; a language we do not speak gives None."""
    if not language:
        return None
    primary = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for a browser's ``Accept-Language`` header (q-values honoured)."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = supported(tag)
        # Earlier entries win ties, as browsers list them by preference.
        if language and q > best_q:
            best, best_q = language, q
    return best


def use(language: str | None) -> str:
    """Make `language` (if we speak it) the language of the rest of this request or task."""
    chosen = supported(language) or DEFAULT_LANGUAGE
    _language.set(chosen)
    return chosen


def current() -> str:
    return _language.get()


def babel_locale(language: str | None = None) -> str:
    return BABEL_LOCALES[supported(language) or current()]


@cache
def translations(language: str) -> Translations:
    """All domains of `language` merged into one catalogue (tests/unit/test_terminology.py keeps one
    translation per English text across them). English is the texts as written."""
    merged = Translations()
    for name in DOMAINS if language != DEFAULT_LANGUAGE else ():
        loaded = _load(language, name)
        if loaded is not None:
            merged.merge(loaded)
            # The language's plural rule (Japanese has one form), from its catalogue's Plural-Forms header.
            merged.plural = loaded.plural
    return merged


def _load(language: str, domain: str) -> Translations | None:
    if language == DEFAULT_LANGUAGE:
        return None
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as compiled:
            return Translations(compiled, domain=domain)
    if po.exists():
        # Not compiled yet (a checkout without `make install`): compile in memory.
        return Translations(BytesIO(compile_po(po)), domain=domain)
    return None


def compile_po(po: Path) -> bytes:
    with po.open("rb") as source:
        catalog = read_po(source, locale=po.parent.parent.name)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def _(message: str, **values: Any) -> str:
    """`message` in the current language, with ``%(name)s`` placeholders filled from `values`."""
    return translate(current(), message, **values)


def translate(language: str | None, message: str, **values: Any) -> str:
    """`message` (marked with `N_`) in a given language rather than the request's: for what is stored once
    and read later by one person (a notification in their profile language)."""
    chosen = supported(language) or DEFAULT_LANGUAGE
    text = translations(chosen).ugettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, count: int, **values: Any) -> str:
    text = translations(current()).ungettext(singular, plural, count)
    return text % {"num": count, **values}


def N_(message: str) -> str:
    return message


# --- numbers and dates in the current language's conventions -------------------------------------------


def number(value: int | float | Decimal) -> str:
    return format_decimal(value, locale=babel_locale())


def date(value: dt.date | dt.datetime | None, style: str = "medium") -> str:
    if value is None:
        return ""
    day = value.date() if isinstance(value, dt.datetime) else value
    return format_date(day, format=style, locale=babel_locale())


def datetime(value: dt.datetime | None, style: str = "medium", zone: str | None = None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(
        value, format=style, tzinfo=get_timezone(zone) if zone else None, locale=babel_locale()
    )


def time(value: dt.datetime | None, style: str = "short") -> str:
    if value is None:
        return ""
    return format_time(value, format=style, locale=babel_locale())
