"""Pure privacy rules (PRV-1..5): every allowed and forbidden move of an erasure request, the country contact
address check and the policy text an operator publishes."""

from __future__ import annotations

import pytest

from carlink.errors import CarlinkError, Conflict
from carlink.privacy import rules

ALLOWED = {("requested", "completed"), ("requested", "rejected")}


@pytest.mark.parametrize("current", rules.ERASURE_STATES)
@pytest.mark.parametrize("target", rules.ERASURE_STATES)
def test_erasure_request_moves_only_from_requested_to_a_final_state(current: str, target: str) -> None:
    # REQ: PRV-5
    assert rules.can_move(current, target) == ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        rules.check_move(current, target)
    else:
        with pytest.raises(Conflict) as refused:
            rules.check_move(current, target)
        assert refused.value.code == "erasure_transition_invalid"


def test_an_unknown_state_moves_nowhere() -> None:
    assert not rules.can_move("archived", "completed")


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (" Privacy.DE@Example.com ", "privacy.de@example.com"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_a_country_contact_is_an_email_address_or_nothing(raw: str | None, kept: str | None) -> None:
    # REQ: PRV-2, PRV-3 — nothing means revocation goes through the dealer.
    assert rules.checked_contact(raw) == kept


@pytest.mark.parametrize("raw", ["privacy", "a@b", "two words@example.com", "x@" + "e" * 260 + ".com"])
def test_a_country_contact_that_is_no_address_is_refused(raw: str) -> None:
    with pytest.raises(CarlinkError) as refused:
        rules.checked_contact(raw)
    assert refused.value.code == "contact_invalid"


def test_policy_rows_are_read_one_per_line() -> None:
    rows = rules.parse_policy_rows("Email | Signing in | Contract | Until erasure\n\n a | b | c | d ")
    assert rows == [
        {"data": "Email", "purpose": "Signing in", "basis": "Contract", "kept": "Until erasure"},
        {"data": "a", "purpose": "b", "basis": "c", "kept": "d"},
    ]
    with pytest.raises(CarlinkError):
        rules.parse_policy_rows("Email | Signing in")


@pytest.mark.parametrize(
    ("title", "summary", "rows", "code"),
    [
        ("", "s", [{"data": "a", "purpose": "b", "basis": "c", "kept": "d"}], "policy_title_missing"),
        ("t", " ", [{"data": "a", "purpose": "b", "basis": "c", "kept": "d"}], "policy_summary_missing"),
        ("t", "s", [], "policy_rows_missing"),
        ("t", "s", [{"data": "a", "purpose": "", "basis": "c", "kept": "d"}], "policy_row_incomplete"),
    ],
)
def test_a_policy_needs_title_summary_and_complete_rows(
    title: str, summary: str, rows: list[dict[str, str]], code: str
) -> None:
    # REQ: PRV-1
    with pytest.raises(CarlinkError) as refused:
        rules.check_policy_text(title, summary, rows)
    assert refused.value.code == code
    rules.check_policy_text("t", "s", [{"data": "a", "purpose": "b", "basis": "c", "kept": "d"}])
