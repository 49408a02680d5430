"""The connectivity guide is generated from the model catalogue (VEH-1) and the country table (CON-1, CON-2,
CON-5, CON-6): complete for every model in every language, and different exactly where the catalogue is."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from babel import Locale

from carlink import i18n
from carlink.connectivity.countries import (
    COUNTRIES,
    JA_READINGS,
    TrafficCoverage,
    checked_country,
    country_choices,
    country_name,
)
from carlink.connectivity.guidance import Guide, ItemKind, build_guide
from carlink.errors import CarlinkError
from carlink.partners.manuals import digital_years, manual_for, models_with_manual
from carlink.protocol.catalogue import (
    CATALOGUE,
    MENU_PATHS,
    DataConnection,
    InfotainmentMenu,
    ModelProfile,
    PrivacyScope,
    profile,
)
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
    assert germany["country"] == germany["home_country"] == "DE" and germany["abroad"] is False
    assert (germany["roaming_available"], germany["traffic_coverage"], germany["esim_plan_offered"]) == (
        True,
        "full",
        True,
    )
    mexico = build_guide(taycan, model_year=2023, country="MX", home_country="de")
    assert mexico.facts()["roaming_available"] is False and mexico.facts()["abroad"] is True
    assert mexico.facts()["traffic_coverage"] == TrafficCoverage.NONE.value
    by_key = {i.key: i for s in mexico.sections for i in s.items}
    assert by_key["roaming.country"].kind is ItemKind.WARNING
    assert "Mexico: roaming is not available" in str(by_key["roaming.country"].text)
    assert (
        by_key["connections.esim_plan"].kind is ItemKind.WARNING
    )  # eSIM-only, and its plan cannot roam there
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
    assert checked_country(" fr ") == "FR" and checked_country("is") == "IS"  # IS: known, no data of ours
    for nonsense in ("ZZ", "QQ", "F1"):  # two characters that no country has
        with pytest.raises(CarlinkError) as unknown:
            checked_country(nonsense)
        assert unknown.value.code == "invalid_country"
    with pytest.raises(CarlinkError) as refused:
        checked_country("France")
    assert refused.value.code == "invalid_country"
    i18n.use("de")
    assert refused.value.message == "France ist kein Ländercode; verwenden Sie zwei Buchstaben wie FR"
    i18n.use("ja")
    assert refused.value.message.startswith("France は国コードではありません")


# --- finding 3 of the review: at home and abroad the guide never contradicts itself (CON-1, CON-2) ---------

HOMES = ("DE", "PT", "MX", "IS")  # a plan sold and roaming; no plan sold; no roaming; no data


def every_guide() -> Iterator[Guide]:
    for model in CATALOGUE:
        for year in years(model.years):
            for country in [*COUNTRIES, "IS"]:
                for home in (country, *HOMES):
                    yield build_guide(model, model_year=year, country=country, home_country=home)


def test_no_guide_says_the_car_does_not_work_in_a_country_where_it_says_roaming_is_available() -> None:
    checked = 0
    for guide in every_guide():
        text = " ".join(texts(guide))
        assert not ("do not work there" in text and "roaming is available" in text), (guide.facts(), text)
        items = {item.key: item for section in guide.sections for item in section.items}
        # Roaming in the guide's country matters only on a trip; at home the guide points to the chooser.
        assert ("roaming.country" in items) is guide.abroad and ("roaming.trip" in items) is not guide.abroad
        plan = items.get("connections.esim_plan")
        if guide.abroad and guide.country is not None and plan is not None:
            # Abroad the plan from home roams, if there is one: whether one is sold in the visited country
            # does not matter; whether one is sold at home and roaming is available here does.
            home = COUNTRIES.get(guide.home_country_code)
            home_plan = home is not None and home.esim_plan
            assert (plan.kind is ItemKind.WARNING) is (not (home_plan and guide.country.roaming)), (
                guide.facts(),
                str(plan.text),
            )
            assert "is offered here" not in str(plan.text)
            assert ("works here too" in str(plan.text)) is (home_plan and guide.country.roaming)
            assert ("roaming.esim_no_charges" in items) is (
                DataConnection.ESIM in guide.model.data_connections and home_plan and guide.country.roaming
            )
        checked += 1
    assert checked > 1000


def test_an_esim_only_guide_gives_no_advice_about_a_provider_it_does_not_have() -> None:
    for guide in every_guide():
        has_own_plan = {DataConnection.INSERTED_SIM, DataConnection.PHONE_HOTSPOT} & set(
            guide.model.data_connections
        )
        assert ("roaming.costs" in keys(guide)) is bool(has_own_plan)
        if guide.model.esim_only:
            assert not [t for t in texts(guide) if "provider" in t], guide.facts()


def test_a_visiting_esim_car_is_told_that_its_home_plan_roams_and_a_car_at_home_whether_a_plan_is_sold() -> (
    None
):
    taycan = profile("taycan-1")
    visiting = texts(build_guide(taycan, model_year=2023, country="PT", home_country="DE"))
    assert "Portugal: the eSIM data plan from your home country works here too, through roaming." in visiting
    assert "Portugal: roaming is available." in visiting
    assert "Data over the built-in eSIM's carlink plan has no roaming charges." in visiting
    # A car from a country where no plan is sold has none to take abroad (the review's Portugal → France).
    from_portugal = " ".join(texts(build_guide(taycan, model_year=2023, country="FR", home_country="PT")))
    assert "Portugal: no eSIM data plan is sold there" in from_portugal
    assert "works here too" not in from_portugal
    assert "no roaming charges" not in from_portugal
    at_home = build_guide(taycan, model_year=2023, country="PT", home_country="PT")
    plan = next(i for i in at_home.section("connections").items if i.key == "connections.esim_plan")
    assert plan.kind is ItemKind.WARNING and "no eSIM data plan is offered here yet" in str(plan.text)
    assert "roaming.trip" in keys(at_home) and "roaming is available" not in " ".join(texts(at_home))
    stranded = texts(build_guide(taycan, model_year=2023, country="MX", home_country="DE"))
    assert "Mexico: roaming is not available, so this car stays offline there." in stranded
    sim_car = texts(build_guide(profile("911-8"), model_year=2021, country="MX", home_country="DE"))
    assert any(
        t.startswith("Mexico: roaming is not available; there, the car goes online only with")
        for t in sim_car
    )


# --- finding 4: one table of menu paths for the guide and the owner's manual (VEH-1) ----------------------


def manual_years(model: ModelProfile) -> list[int]:
    found = digital_years(model)
    assert found is not None
    first, last = found
    return list(range(first, (last or 2026) + 1))


@pytest.mark.parametrize("language", ["en", "de", "ja"])
def test_the_owners_manual_and_the_guide_name_the_same_menu_path_for_each_model_and_year(
    language: str,
) -> None:
    i18n.use(language)
    for model in models_with_manual():
        for year in manual_years(model):
            roaming, data = model.menu_paths(year)
            guide = build_guide(model, model_year=year, country="DE")
            manual = manual_for(model.key, model_year=year)
            roaming_section = next(s for s in manual.sections if s.anchor == "roaming")
            in_manual = " ".join(roaming_section.paragraphs)
            in_guide = {item.key: str(item.text) for section in guide.sections for item in section.items}
            assert (
                i18n._(data.mobile_data) in in_manual
                and i18n._(data.mobile_data) in in_guide["data_off.switch"]
            )
            if roaming is None:
                assert "roaming.automatic" in in_guide and "roaming.enable" not in in_guide
            else:
                assert (
                    i18n._(roaming.roaming) in in_manual
                    and i18n._(roaming.roaming) in in_guide["roaming.enable"]
                )
            # No other family's path: both describe this year's screen only.
            others = [paths for menu, paths in MENU_PATHS.items() if paths not in (roaming, data)]
            for paths in others:
                for path in (paths.roaming, paths.mobile_data):
                    if path not in (data.mobile_data, getattr(roaming, "roaming", None)):
                        assert i18n._(path) not in in_manual, (model.key, year, path)
            # Both say that the car shows its menus in its own language.
            assert "menu_names" in " ".join(in_guide) and len(roaming_section.paragraphs) >= 2


def test_a_models_manual_that_spans_a_menu_change_shows_both_menus() -> None:
    panamera = manual_for("panamera-2")
    anchors = [s.anchor for s in panamera.sections]
    assert "roaming" in anchors and "roaming-2020" in anchors
    early = next(s for s in panamera.sections if s.anchor == "roaming")
    late = next(s for s in panamera.sections if s.anchor == "roaming-2020")
    assert early.title == "Roaming and mobile data (until 2019)"
    assert "Device manager > Options > Data connection > Roaming" in " ".join(early.paragraphs)
    assert "Settings > Device manager > Options > Mobile data > Roaming" in " ".join(late.paragraphs)
    # A car's own manual follows its model year (model.menus), like its guide.
    car = manual_for("panamera-2", "971AA1", 2021)
    assert [s.anchor for s in car.sections].count("roaming") == 1
    assert "Mobile data > Roaming" in " ".join(
        next(s for s in car.sections if s.anchor == "roaming").paragraphs
    )


def test_the_menu_paths_are_shown_in_the_persons_language_and_say_so() -> None:
    i18n.use("de")
    guide = build_guide(profile("911-8"), model_year=2021, country="DE")
    assert "Einstellungen > Geräteverwaltung > Optionen > Mobile Daten > Roaming" in " ".join(texts(guide))
    assert any("in der Sprache Ihres Fahrzeugs" in t for t in texts(guide))
    manual = manual_for("911-8", model_year=2021)
    assert "in der Sprache Ihres Fahrzeugs" in " ".join(
        next(s for s in manual.sections if s.anchor == "roaming").paragraphs
    )


# --- finding 11: the country chooser ------------------------------------------------------------------------


def test_the_country_chooser_is_in_each_languages_alphabetical_order() -> None:
    i18n.use("de")
    german = [name for _code, name in country_choices()]
    assert german.index("Norwegen") < german.index("Österreich") < german.index("Polen")
    assert german.index("Schweiz") < german.index("Südafrika") < german.index("Taiwan")
    i18n.use("ja")
    japanese = [name for _code, name in country_choices()]
    # Gojūon order by reading: 日本 (にほん) after ドイツ, 韓国 (かんこく) after カナダ.
    assert japanese.index("ドイツ") < japanese.index("日本") < japanese.index("ニュージーランド")
    assert japanese.index("カナダ") < japanese.index("韓国") < japanese.index("ギリシャ")
    assert japanese.index("オーストラリア") < japanese.index("オランダ")


def test_every_japanese_country_name_sorts_by_its_reading() -> None:
    i18n.use("ja")
    for code in COUNTRIES:
        name = country_name(code)
        assert code in JA_READINGS or "\u30a0" <= name[0] <= "\u30ff" or "\u3040" <= name[0] <= "\u309f", name


def test_a_country_we_have_no_data_for_stays_in_the_chooser() -> None:
    assert ("IS", "Iceland (no data yet)") in country_choices("is", "DE")
    assert [code for code, _name in country_choices("DE")] == [code for code, _name in country_choices()]
    i18n.use("ja")
    assert ("IS", "アイスランド（情報はまだありません）") in country_choices("IS")


def test_every_menu_path_of_a_menu_family_starts_where_the_family_does() -> None:
    # One family of infotainment menus, one root: a guide never sends a person in by two doors.
    from carlink.protocol.catalogue import MENU_PATHS

    for menu, paths in MENU_PATHS.items():
        roots = {path.split(" > ")[0] for path in dataclasses.astuple(paths)}
        assert len(roots) == 1, (menu, roots)
