"""The expected authorisation matrix as docs/security/authorization.md keeps it, and the outcome vocabulary
every answer is reduced to (issue 9, point 2).

The doc is the source of truth: the test parses its tables, so a route is only "allowed" because a person
wrote so in the doc, never because the code happened to answer 200.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DOC = Path(__file__).resolve().parents[2] / "docs" / "security" / "authorization.md"

# The columns of the matrix, in the doc's order, with the demo ID acting in that role (None: signed out).
ROLES: tuple[str, ...] = (
    "owner",
    "secondary",
    "other owner",
    "dealer",
    "other dealer",
    "soc",
    "operator",
    "stranger",
)
OUTCOMES = frozenset({"ok", "login", "401", "403", "404", "405"})

# Codes that refuse the input, not the person, even where the status alone would read as a refusal of who
# is calling: a wrong current password (403 on erasure, 401 elsewhere) is a typed mistake by someone who got
# past every check of who they are.
INPUT_CODES = frozenset(
    {
        "password_wrong",
        "wrong_password",
        "wrong_pin",
        "invalid_credentials",
        # ids no row has, sent in a body or form (never the object of the path)
        "offer_not_found",
        "slot_not_found",
        "recall_not_found",
        "package_not_found",
        "account_not_found",
        "service_not_found",
        "service_setting_not_found",
        "policy_not_found",
    }
)
# Codes of a refusal to say who you are: the sign-in is missing or no longer valid.
LOGIN_CODES = frozenset({"unauthorised", "invalid_token", "login_required"})
# Codes that hide the object (the same answer as for one that does not exist), whatever the status: a
# portal form answers a hidden car with 400 (`form_status`), yet it is the hidden car's answer.
HIDDEN_CODES = frozenset({"vehicle_not_found", "not_found"})


@dataclass(frozen=True)
class Answer:
    status: int
    code: str
    location: str

    @property
    def outcome(self) -> str:
        """The answer in the matrix's words: `ok` passed authorisation; `login` refused a missing sign-in
        (JSON 401 or the sign-in page); `401`/`403`/`405` refused the ID; `404` hid the object."""
        if self.status >= 500:  # 599: the connection broke (the code names the transport error)
            return f"error {self.status}"
        if self.status in (301, 302, 303, 307, 308):
            return "login" if self.location.split("?")[0].rstrip("/").endswith("/signin") else "ok"
        if self.code in INPUT_CODES:
            return "ok"
        if self.code in LOGIN_CODES or (self.status == 401 and not self.code):
            return "login"
        if self.code in HIDDEN_CODES or (self.code.endswith("_not_found") and self.status in (400, 404)):
            return "404"  # a portal form answers 400 where the API answers 404 (`form_status`)
        if self.status in (401, 403, 404, 405):
            return str(self.status)
        return "ok"

    def __str__(self) -> str:
        return f"{self.status} {self.code}".strip()


def answer_of(response: httpx.Response, body: bytes) -> Answer:
    """Status, error code (JSON `error.code`, the compat facade's `error`, or the error page's `data-code`)
    and where a redirect leads."""
    code = ""
    kind = response.headers.get("content-type", "")
    if "json" in kind:
        try:
            parsed: Any = json.loads(body or b"null")
        except ValueError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code", ""))
        elif isinstance(error, str):
            code = error
    elif "html" in kind:
        found = re.search(rb'data-code="([a-z_]+)"', body)
        code = found.group(1).decode() if found else ""
    return Answer(response.status_code, code, response.headers.get("location", ""))


@dataclass(frozen=True)
class Row:
    route: str  # "METHOD /path" as the app declares it
    cells: dict[str, str]


def expected_rows(doc: Path = DOC) -> dict[str, Row]:
    """The rows of every matrix table in the doc: `| `METHOD /path` | object | owner | … | stranger |`."""
    rows: dict[str, Row] = {}
    text = doc.read_text(encoding="utf-8")
    before, _, after = text.partition("## Routes left out")
    for line in (before + after.partition("\n## ")[2]).splitlines():
        found = re.match(r"\|\s*`([A-Z]+ /[^`]*)`\s*\|(.*)\|\s*$", line)
        if not found:
            continue
        cells = [cell.strip() for cell in found.group(2).split("|")]
        values = cells[1:]  # the first cell names the object
        assert len(values) == len(ROLES), f"{found.group(1)}: {len(values)} cells, not {len(ROLES)}"
        unknown = set(values) - OUTCOMES
        assert not unknown, f"{found.group(1)}: unknown outcomes {unknown}"
        assert found.group(1) not in rows, f"{found.group(1)} twice in the doc"
        rows[found.group(1)] = Row(found.group(1), dict(zip(ROLES, values, strict=True)))
    return rows


def excluded_routes(doc: Path = DOC) -> dict[str, str]:
    """The routes the matrix leaves out, each with its reason: `| `METHOD /path` | reason |`."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Routes left out", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^\|\s*`([A-Z]+ /[^`]*)`\s*\|\s*([^|]+?)\s*\|\s*$", section, re.MULTILINE)
    return dict(found)
