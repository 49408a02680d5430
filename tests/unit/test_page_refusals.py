"""Every refusal a page shows carries its stable error code as `data-code` beside the message in the reader's
language, so a script, a test or a support engineer reads the code and not the text (issue 9)."""

from __future__ import annotations

import re
from pathlib import Path

import carlink

TEMPLATES = Path(carlink.__file__).parent / "web" / "templates"
# A refusal rendered from the server: `{% if …error… %}<p class="error" role="alert" …>`.
REFUSAL = re.compile(r'\{% if [^%]*error[^%]*%\}\s*<p class="error" role="alert"[^>]*>')
# Refusals whose code the wire contract keeps elsewhere: the app's sign-in pages of the maker's identity
# paths show the message only (the community clients read the status).
WITHOUT_CODE = {"login_identifier.html"}


def test_every_refusal_on_a_page_names_its_code() -> None:
    missing = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)[:90]}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        if path.name not in WITHOUT_CODE
        for match in REFUSAL.finditer(path.read_text())
        if "data-code=" not in match.group(0)
    ]
    assert not missing, "\n".join(missing)


def test_the_walk_finds_the_refusals() -> None:
    found = sum(len(REFUSAL.findall(path.read_text())) for path in TEMPLATES.rglob("*.html"))
    assert found >= 40, found
