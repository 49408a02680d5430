"""Every code of car security that a page shows has words, in every language (issue 8): the SOC console's
label maps (security.console) cover the enums of security.rules, the owner's page names every step of an
activation, and each label has a German and a Japanese translation."""

from __future__ import annotations

import pytest

from carlink import i18n
from carlink.protocol.messages import AlarmTrigger
from carlink.security import console, pages
from carlink.security.certificate import PACKAGE_NAMES
from carlink.security.rules import (
    CALL_OUTCOMES,
    PACKAGES,
    SEVERITY,
    TRANSITIONS,
    ActivationState,
    AlarmState,
)


def test_every_state_trigger_severity_outcome_and_move_of_the_soc_has_a_label() -> None:
    assert set(console.STATES) == {state.value for state in AlarmState}
    assert set(console.TRIGGERS) == {trigger.value for trigger in AlarmTrigger}
    assert set(console.SEVERITIES) >= set(SEVERITY.values())
    assert set(console.OUTCOMES) == set(CALL_OUTCOMES)
    targets = {target.value for allowed in TRANSITIONS.values() for target in allowed}
    assert set(console.MOVES) == targets


def test_every_step_of_an_activation_and_every_package_has_a_name() -> None:
    assert set(pages.ACTIVATION_STATES) == set(ActivationState)
    assert set(PACKAGE_NAMES) == set(PACKAGES)


LABEL_MAPS = (
    console.STATES,
    console.TRIGGERS,
    console.SEVERITIES,
    console.OUTCOMES,
    console.MOVES,
    console.NOTICES,
    pages.ACTIVATION_STATES,
    pages.NOTICES,
    PACKAGE_NAMES,
)


@pytest.mark.parametrize("language", ["de", "ja"])
def test_every_label_is_translated(language: str) -> None:
    catalogue = i18n.translations(language)
    untranslated = [
        label
        for labels in LABEL_MAPS
        for label in labels.values()
        if catalogue.ugettext(label) == label and label not in ("Test",)
    ]
    assert untranslated == []


def test_the_soc_console_speaks_the_operators_language() -> None:
    i18n.use("ja")
    try:
        assert console._shown(console.STATES)["theft_confirmed"] == "盗難確定"
    finally:
        i18n.use("en")
    assert console._shown(console.STATES)["theft_confirmed"] == "Theft confirmed"
