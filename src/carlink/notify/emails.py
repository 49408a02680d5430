"""The texts of carlink's emails: one plain-text Jinja2 template per mail and language.

A template's first line is ``Subject: …``, then a blank line, then the body. Templates are rendered when a
mail is queued (notify.service.send_email), so the outbox keeps exactly what the person was told. A paragraph
is one line (Japanese: one sentence a line): mail programs wrap it to the reader's screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from carlink import i18n
from carlink.i18n import DEFAULT_LANGUAGE

TEMPLATES = Path(__file__).parent / "templates"

# Every mail carlink sends: the English templates name them; tests/unit/test_emails.py checks that each
# has a template in every language of carlink.i18n.LANGUAGES.
TEMPLATE_NAMES = frozenset(
    path.stem for path in (TEMPLATES / DEFAULT_LANGUAGE).glob("*.txt") if not path.stem.startswith("_")
)
SUBJECT_PREFIX = "Subject: "

# Plain text: nothing to escape. StrictUndefined makes a missing context key an error instead of a gap in a
# mail that has already gone out.
_loader = FileSystemLoader(TEMPLATES)
_environment = Environment(
    loader=_loader,
    autoescape=False,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    language: str


def mail_language(language: str) -> str:
    """The language a mail is written in: ``de-AT`` and ``de_DE`` give ``de``; others give English."""
    return i18n.supported(language) or DEFAULT_LANGUAGE


def render(template: str, language: str, context: dict[str, Any]) -> RenderedEmail:
    """Subject and body of `template` in `language`; a missing context key raises jinja2.UndefinedError."""
    if template not in TEMPLATE_NAMES:
        raise ValueError(f"no email template named {template!r}")
    chosen = mail_language(language)
    subject, body = _compiled(f"{chosen}/{template}.txt")
    # A value with a line break must not spill into the mail's headers.
    one_line = " ".join(subject.render(context).split())
    return RenderedEmail(subject=one_line, text=body.render(context).strip("\n") + "\n", language=chosen)


@lru_cache
def _compiled(name: str) -> tuple[Template, Template]:
    """The subject line and the body of a template file, compiled apart so that no value can move the
    boundary between them."""
    source, _, _ = _loader.get_source(_environment, name)
    head, _, body = source.partition("\n\n")
    if not head.startswith(SUBJECT_PREFIX) or "\n" in head:
        raise ValueError(f"email template {name} must start with one 'Subject: ' line and a blank line")
    return _environment.from_string(head.removeprefix(SUBJECT_PREFIX)), _environment.from_string(body)
