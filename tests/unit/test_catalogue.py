"""The model catalogue (VEH-1): each model's capability profile, as the owner's manuals describe it."""

from __future__ import annotations

import pytest

from carlink.protocol.catalogue import (
    CATALOGUE,
    CHARGE_COMMANDS,
    CLIMATE_COMMANDS,
    DataConnection,
    Engine,
    InfotainmentMenu,
    ModelProfile,
    PrivacyScope,
    SymbolPosition,
    Variant,
    find_variant,
    profile,
)
from carlink.protocol.messages import CommandType

OLDER_INFOTAINMENT = ["911-7", "718", "macan-1", "cayenne-2"]


def test_the_taycan_is_esim_only_and_needs_no_pairing_code() -> None:
    taycan = profile("taycan-1")
    assert taycan.esim_only and taycan.data_connections == (DataConnection.ESIM,)
    assert taycan.pairing_code_needed is False


def test_the_taycan_signs_in_with_the_id_in_the_car_and_roams_by_itself() -> None:
    taycan = profile("taycan-1")
    assert taycan.in_car_id_login is True
    assert taycan.roaming_automatic and taycan.roaming_menu is InfotainmentMenu.AUTOMATIC


def test_privacy_mode_in_the_taycan_switches_off_every_connected_service() -> None:
    assert profile("taycan-1").privacy_scope is PrivacyScope.ALL_SERVICES
    others = [model for model in CATALOGUE if model.key != "taycan-1"]
    assert all(model.privacy_scope is PrivacyScope.REMOTE_ACCESS for model in others)


def test_the_taycan_shows_its_connection_symbol_top_right() -> None:
    assert profile("taycan-1").symbol_position is SymbolPosition.TOP_RIGHT


@pytest.mark.parametrize("key", OLDER_INFOTAINMENT)
def test_older_infotainment_shows_the_symbol_bottom_left_and_needs_a_pairing_code(key: str) -> None:
    model = profile(key)
    assert model.symbol_position is SymbolPosition.BOTTOM_LEFT
    assert model.pairing_code_needed is True
    assert model.in_car_id_login is False
    assert model.roaming_menu is InfotainmentMenu.PHONE_OPT
    assert not model.roaming_automatic and not model.esim_only


@pytest.mark.parametrize("key", ["911-8", "macan-2", "cayenne-3", "panamera-2"])
def test_newer_infotainment_shows_the_symbol_top_right(key: str) -> None:
    assert profile(key).symbol_position is SymbolPosition.TOP_RIGHT
    assert profile(key).pairing_code_needed is True


def test_the_macan_before_2018_and_the_second_cayenne_are_the_older_generations() -> None:
    assert profile("macan-1").years == (2014, 2018)
    assert profile("cayenne-2").years == (2010, 2017)
    assert profile("911-7").generation == "7th generation"


@pytest.mark.parametrize(
    "model, variant",
    [(m, v) for m in CATALOGUE for v in m.variants if v.engine is Engine.COMBUSTION],
    ids=lambda x: getattr(x, "code", getattr(x, "key", "")),
)
def test_combustion_cars_have_no_charging_commands_or_battery_values(
    model: ModelProfile, variant: Variant
) -> None:
    commands = model.commands(variant.engine)
    assert not commands & CHARGE_COMMANDS
    assert {"battery", "charging"}.isdisjoint(model.measurements(variant.engine))
    assert "fuel" in model.measurements(variant.engine)


def test_electric_and_hybrid_cars_charge_and_report_their_battery() -> None:
    taycan, taycan_4s = find_variant("Y1ADB1")
    panamera, hybrid = find_variant("971AE1")
    assert CHARGE_COMMANDS.issubset(taycan.commands(taycan_4s.engine))
    assert CHARGE_COMMANDS.issubset(panamera.commands(hybrid.engine))
    assert {"battery", "charging"} <= taycan.measurements(Engine.BEV)
    assert "fuel" not in taycan.measurements(Engine.BEV)
    assert {"battery", "charging", "fuel"} <= panamera.measurements(Engine.PHEV)


def test_remote_climate_comes_with_an_electric_drive_or_the_model_option() -> None:
    assert not CLIMATE_COMMANDS & profile("911-7").commands(Engine.COMBUSTION)
    assert "climate" not in profile("911-7").measurements(Engine.COMBUSTION)
    assert CLIMATE_COMMANDS.issubset(profile("cayenne-3").commands(Engine.COMBUSTION))
    assert CLIMATE_COMMANDS.issubset(profile("cayenne-2").commands(Engine.PHEV))


@pytest.mark.parametrize("model", CATALOGUE, ids=lambda m: m.key)
def test_every_model_locks_unlocks_honks_and_wakes(model: ModelProfile) -> None:
    for variant in model.variants:
        assert {
            CommandType.LOCK,
            CommandType.UNLOCK,
            CommandType.HONK_FLASH,
            CommandType.WAKE,
        } <= model.commands(variant.engine)


def test_variant_codes_are_unique_and_lead_to_their_model() -> None:
    codes = [variant.code for model in CATALOGUE for variant in model.variants]
    assert len(codes) == len(set(codes))
    model, variant = find_variant("991110")
    assert model.key == "911-7" and variant.name == "911 Carrera"
    with pytest.raises(KeyError):
        find_variant("NOPE00")
    with pytest.raises(KeyError):
        profile("911-7").variant("Y1ADB1")
