"""VINs (ISO 3779): 17 characters without I, O and Q; the North-American check digit in position 9."""

from __future__ import annotations

import pytest

from carlink.demo import world
from carlink.protocol.vin import InvalidVin, check_digit, is_valid_vin, make_vin, normalise_vin


def test_a_north_american_vin_carries_its_check_digit_in_position_nine() -> None:
    vin = "1HGCM82633A004352"
    assert is_valid_vin(vin)
    assert check_digit(vin) == vin[8] == "3"


def test_the_check_digit_ignores_what_is_written_in_position_nine() -> None:
    assert check_digit("1HGCM826X3A004352") == check_digit("1HGCM82603A004352") == "3"


def test_a_remainder_of_ten_is_written_as_x() -> None:
    vin = "1M8GDM9AXKP042788"
    assert is_valid_vin(vin)
    assert check_digit(vin) == "X"


@pytest.mark.parametrize("vin", [car.vin for car in world.DEMO_CARS])
def test_vins_made_for_the_demo_fleet_are_valid_with_a_correct_check_digit(vin: str) -> None:
    assert normalise_vin(vin) == vin
    assert check_digit(vin) == vin[8]


def test_a_vin_is_normalised_to_capitals_without_surrounding_spaces() -> None:
    assert normalise_vin("  1hgcm82633a004352 \n") == "1HGCM82633A004352"


@pytest.mark.parametrize(
    "raw",
    [
        "1HGCM82633A00435",  # 16 characters
        "1HGCM82633A0043521",  # 18 characters
        "1HGCM82633A00435I",  # I looks like 1
        "1HGCM82633A00435O",  # O looks like 0
        "1HGCM82633A00435Q",  # Q looks like 0
        "1HGCM8263-A004352",
        "",
        "NOT-A-VIN",
    ],
)
def test_anything_but_seventeen_allowed_characters_is_not_a_vin(raw: str) -> None:
    assert not is_valid_vin(raw)
    with pytest.raises(InvalidVin):
        normalise_vin(raw)


def test_a_vin_from_parts_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidVin):
        make_vin("WP0", "ZZZY", "P", "S", 1)


def test_make_vin_builds_maker_code_descriptor_year_plant_and_serial() -> None:
    vin = make_vin("WP0", "ZZZY1", "P", "S", 1)
    assert vin[:3] == "WP0" and vin[3:8] == "ZZZY1" and vin[9] == "P" and vin[10] == "S"
    assert vin[11:] == "000001"
    assert check_digit(vin) == vin[8]
