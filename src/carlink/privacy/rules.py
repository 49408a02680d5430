"""Pure decisions of the privacy domain: the erasure request's states (PRV-5) and what operators may enter."""

from __future__ import annotations

import re

from carlink.errors import CarlinkError, Conflict

REQUESTED = "requested"
COMPLETED = "completed"
REJECTED = "rejected"
ERASURE_STATES = (REQUESTED, COMPLETED, REJECTED)

# requested -> completed | rejected. Completing a completed request again is harmless (idempotent) and
# handled before the table is asked; everything else out of a final state is refused.
ERASURE_TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({COMPLETED, REJECTED}),
    COMPLETED: frozenset(),
    REJECTED: frozenset(),
}

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def can_move(current: str, target: str) -> bool:
    return target in ERASURE_TRANSITIONS.get(current, frozenset())


def check_move(current: str, target: str) -> None:
    if not can_move(current, target):
        raise Conflict(
            "an erasure request that is %(current)s cannot become %(target)s",
            code="erasure_transition_invalid",
            current=current,
            target=target,
        )


def checked_contact(raw: str | None) -> str | None:
    """A country's privacy contact: a valid email address, or nothing (then revocation goes via dealers)."""
    value = (raw or "").strip().lower()
    if not value:
        return None
    if len(value) > 254 or not _EMAIL.match(value):
        raise CarlinkError(
            "%(address)s is not a valid email address", code="contact_invalid", address=repr(raw)
        )
    return value


def check_policy_text(title: str, summary: str, rows: list[dict[str, str]]) -> None:
    """A new policy version needs a title, a summary and at least one row of which data is kept and why."""
    if not title.strip() or len(title) > 200:
        raise CarlinkError("give the policy a title (at most 200 characters)", code="policy_title_missing")
    if not summary.strip():
        raise CarlinkError("give the policy a short summary", code="policy_summary_missing")
    if not rows:
        raise CarlinkError(
            "list at least one kind of data with its purpose, basis and how long it is kept",
            code="policy_rows_missing",
        )
    for row in rows:
        if not all((row.get(key) or "").strip() for key in ("data", "purpose", "basis", "kept")):
            raise CarlinkError(
                "each row needs the data, its purpose, the basis and how long it is kept",
                code="policy_row_incomplete",
            )


def parse_policy_rows(text: str) -> list[dict[str, str]]:
    """Rows typed one per line as ``data | purpose | basis | how long kept``."""
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) != 4:
            raise CarlinkError(
                "write each row as: data | purpose | basis | how long kept", code="policy_row_incomplete"
            )
        rows.append(dict(zip(("data", "purpose", "basis", "kept"), parts, strict=True)))
    return rows
