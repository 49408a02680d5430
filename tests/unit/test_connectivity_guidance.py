"""The connectivity guide is generated from the model catalogue (VEH-1) and the country table (CON-1, CON-2,
CON-5, CON-6): complete for every model in every language, and different exactly where the catalogue is."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from babel import Locale

from carlink import i18n
from carlink.connectivity.countries import COUNTRIES, TrafficCoverage, checked_country
from carlink.connectivity.guidance import Guide, ItemKind, build_guide
from carlink.errors import CarlinkError
from carlink.protocol.catalogue import CATALOGUE, InfotainmentMenu, ModelProfile, PrivacyScope, profile
from carlink.protocol.messages import Network

SECTIONS = ["connections", "roaming", "data_off", "symbol", "privacy", "traffic"]


@pytest.fixture(autouse=True)
def _english_afterwards() -> Iterator[None]:
    yield
    i18n.use("en")


def texts(guide: Guide) -> list[str]:
    return [str(section.title) for section in guide.sections] + [
        str(item.text) for section in guide.sections for item in section.items
    ]


def keys(guide: Guide, section: str | None = None) -> list[str]:
    return [item.key for s in guide.sections if section in (None, s.key) for item in s.items]


def years(model_years: tuple[int, int | None]) -> list[int | None]:
    first, last = model_years
    return [None, first, last or 2026]


@pytest.mark.parametrize("model", CATALOGUE, ids=lambda model: model.key)
def test_every_model_gets_a_complete_guide_in_english_german_and_japanese(model: ModelProfile) -> None:
    for year in years(model.years):
        for country in ("DE", "JP", "MX", "IS"):
            guide = build_guide(model, model_year=year, country=country)
            assert [section.key for section in guide.sections] == SECTIONS
            assert all(section.items for section in guide.sections)
            assert len(set(keys(guide))) == len(keys(guide)), "item keys are unique"
            english = texts(guide)
            assert all(text.strip() and "%(" not in text for text in english)
            for language in ("de", "ja"):
                i18n.use(language)
                translated = texts(guide)
                i18n.use("en")
                untranslated = [e for e, t in zip(english, translated, strict=True) if e == t]
                assert not untranslated, (language, untranslated)
                assert all(text.strip() and "%(" not in text for text in translated)


def test_an_esim_only_model_says_so_and_has_no_sim_pin_or_apn_steps() -> None:
    taycan = profile("taycan-1")
    assert taycan.esim_only
    guide = build_guide(taycan, model_year=2023, country="DE")
    connections = keys(guide, "connections")
    assert "connections.esim_only" in connections
    assert not {"connections.sim", "connections.sim_pin", "connections.sim_apn"} & set(connections)
    assert "connections.hotspot" not in connections and "symbol.wifi" not in keys(guide)
    # A model with its own SIM slot gets the PIN and APN steps, and the 2G warning.
    nine_eleven = build_guide(profile("911-7"), model_year=2016, country="DE")
    assert {"connections.sim_pin", "connections.sim_apn", "connections.calls_on_2g"} <= set(keys(nine_eleven))
    assert "connections.esim_only" not in keys(nine_eleven)


def test_the_hotspot_password_rule_is_at_least_eight_characters() -> None:
    guide = build_guide(profile("macan-2"), model_year=2021, country="DE")
    password = next(i for i in guide.section("connections").items if i.key == "connections.hotspot_password")
    assert "at least 8 characters" in str(password.text)


def test_an_automatic_roaming_model_has_no_roaming_menu_step() -> None:
    taycan = build_guide(profile("taycan-1"), model_year=2023, country="DE")
    assert "roaming.automatic" in keys(taycan, "roaming") and "roaming.enable" not in keys(taycan)
    assert taycan.facts()["roaming_automatic"] is True
    old = build_guide(profile("911-7"), model_year=2016, country="DE")
    enable = next(i for i in old.section("roaming").items if i.key == "roaming.enable")
    assert "PHONE > OPT > PHONE settings > Roaming" in str(enable.text)
    assert "roaming.automatic" not in keys(old)
    new = build_guide(profile("911-8"), model_year=2021, country="DE")
    assert "Settings > Device manager > Options > Mobile data > Roaming" in " ".join(texts(new))


def test_the_menus_follow_the_model_year_where_the_catalogue_says_so() -> None:
    panamera = profile("panamera-2")
    early = build_guide(panamera, model_year=2018, country="DE")
    late = build_guide(panamera, model_year=2021, country="DE")
    assert early.roaming_menu is InfotainmentMenu.DEVICE_MANAGER_DATA_CONNECTION
    assert late.roaming_menu is late.data_menu is InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA
    assert "Device manager > Options > Data connection > Roaming" in " ".join(texts(early))
    assert "Mobile data > Roaming" in " ".join(texts(late))
    assert "roaming.device_manager_place" in keys(early) and "roaming.device_manager_place" not in keys(late)


def test_privacy_mode_for_all_services_and_for_remote_access_read_differently() -> None:
    taycan = build_guide(profile("taycan-1"), model_year=2023, country="DE")
    cayenne = build_guide(profile("cayenne-3"), model_year=2020, country="DE")
    assert taycan.model.privacy_scope is PrivacyScope.ALL_SERVICES
    assert cayenne.model.privacy_scope is PrivacyScope.REMOTE_ACCESS
    scope = {g.model.key: str(g.section("privacy").items[0].text) for g in (taycan, cayenne)}
    assert "every connected service" in scope["taycan-1"]
    assert "pauses remote access" in scope["cayenne-3"] and "keep working" in scope["cayenne-3"]
    # Only the all-services model stops everything through privacy mode, and needs it off for traffic.
    assert "data_off.privacy_all_services" in keys(taycan)
    assert "data_off.privacy_all_services" not in keys(cayenne)
    assert "privacy mode off" in str(taycan.section("traffic").items[0].text)
    assert "privacy" not in str(cayenne.section("traffic").items[0].text)


def test_the_connection_symbol_names_its_place_and_every_network_state() -> None:
    old = build_guide(profile("718"), model_year=2018, country="DE")
    new = build_guide(profile("taycan-1"), model_year=2023, country="DE")
    assert "bottom left" in str(old.section("symbol").items[0].text)
    assert "top right" in str(new.section("symbol").items[0].text)
    states = {i.network for i in old.section("symbol").items if i.kind is ItemKind.STATE}
    assert states == set(Network)


def test_the_guide_follows_the_profile_not_the_models_key() -> None:
    """A model added to the catalogue with the Taycan's profile under a new key gets the same guide."""
    taycan = profile("taycan-1")
    newcomer = dataclasses.replace(taycan, key="newcomer-1", line="Newcomer")
    assert keys(build_guide(newcomer, model_year=2025, country="FR")) == keys(
        build_guide(taycan, model_year=2025, country="FR")
    )


def test_the_country_decides_roaming_traffic_coverage_and_the_esim_plan() -> None:
    taycan = profile("taycan-1")
    germany = build_guide(taycan, model_year=2023, country="de").facts()
    assert germany["country"] == "DE"
    assert (germany["roaming_available"], germany["traffic_coverage"], germany["esim_plan_offered"]) == (
        True,
        "full",
        True,
    )
    mexico = build_guide(taycan, model_year=2023, country="MX")
    assert mexico.facts()["roaming_available"] is False
    assert mexico.facts()["traffic_coverage"] == TrafficCoverage.NONE.value
    by_key = {i.key: i for s in mexico.sections for i in s.items}
    assert by_key["roaming.country"].kind is ItemKind.WARNING
    assert "Mexico: roaming is not available" in str(by_key["roaming.country"].text)
    assert by_key["connections.esim_plan"].kind is ItemKind.WARNING  # eSIM-only and no plan there
    assert "Mexico: real-time traffic is not offered here yet." in texts(mexico)
    # Everywhere: traffic data is not on every road (CON-5).
    assert "traffic.partial" in keys(mexico)


def test_an_unknown_country_gets_a_clear_no_data_line() -> None:
    guide = build_guide(profile("911-8"), model_year=2021, country="IS")
    facts = guide.facts()
    assert facts["country_known"] is False
    assert facts["roaming_available"] is facts["traffic_coverage"] is facts["esim_plan_offered"] is None
    no_data = [t for t in texts(guide) if "we have no data for this country" in t]
    assert no_data and all(t.startswith("Iceland: ") for t in no_data)
    i18n.use("ja")
    assert any(t.startswith("アイスランド：この国についてはまだ情報がありません") for t in texts(guide))


def test_the_country_table_covers_thirty_countries_with_valid_codes() -> None:
    assert len(COUNTRIES) >= 30
    territories = Locale.parse("en_GB").territories
    assert all(code in territories for code in COUNTRIES)
    assert {c.traffic for c in COUNTRIES.values()} == set(TrafficCoverage)
    assert any(not c.roaming for c in COUNTRIES.values()) and any(not c.esim_plan for c in COUNTRIES.values())


def test_a_country_that_is_not_two_letters_is_refused_in_the_persons_language() -> None:
    assert checked_country(" fr ") == "FR"
    with pytest.raises(CarlinkError) as refused:
        checked_country("France")
    assert refused.value.code == "invalid_country"
    i18n.use("de")
    assert refused.value.message == "France ist kein Ländercode; verwenden Sie zwei Buchstaben wie FR"
    i18n.use("ja")
    assert refused.value.message.startswith("France は国コードではありません")
