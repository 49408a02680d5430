"""How the portal words the stored overview (RMT-2): clear words for known values, never a broken page."""

from __future__ import annotations

import datetime as dt

import pytest

from carlink.telemetry.service import Reading
from carlink.web.readings import describe, overview_lines

AT = dt.datetime(2024, 5, 4, 8, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("lock", {"locked": True}, "Locked"),
        ("lock", {"locked": False}, "Unlocked"),
        ("doors", {"open": {"front_left": False, "lid_rear": True}}, "Open: rear lid"),
        ("doors", {"open": {"front_left": False}}, "All closed"),
        ("battery", {"percent": 64}, "64 %"),
        (
            "range",
            {"total_km": 520, "electric_km": 40, "fuel_km": 480},
            "520 km (40 km electric, 480 km on fuel)",
        ),
        ("charging", {"plugged": False, "status": "NOT_PLUGGED"}, "Not plugged in"),
        (
            "charging",
            {"plugged": True, "status": "CHARGING", "mode": "DIRECT", "target_soc": 80, "power_kw": 11.0},
            "Charging at 11 kW, direct charging, target 80 %",
        ),
        ("climate", {"active": True, "target_temperature_c": 21.5}, "On, 21.5 °C"),
        ("mileage", {"km": 35960}, "35,960 km"),
        ("tyres", {"front_left": {"bar": 2.1, "target_bar": 2.7}}, "front left 2.1 bar (low)"),
        ("location", {"lat": 48.8, "lon": -9.1}, "48.80000° N, 9.10000° W"),
    ],
)
def test_known_values_read_as_words(key: str, value: dict[str, object], words: str) -> None:
    assert describe(key, value) == words


def test_a_value_of_unexpected_shape_is_listed_plainly_instead_of_breaking_the_page() -> None:
    assert describe("lock", {"locked": "maybe"}) == "locked: maybe"
    assert describe("battery", {}) == "no value"
    assert describe("new_sensor", {"level_mm": 3}) == "level mm: 3"


def test_overview_keeps_a_fixed_order_and_leaves_the_modes_to_the_status_header() -> None:
    keys = ("mileage", "privacy", "lock", "zeta", "remote_access", "alpha")
    readings = {key: Reading({"value": 1}, AT) for key in keys}
    assert [line.key for line in overview_lines(readings)] == ["lock", "mileage", "alpha", "zeta"]
    assert all(line.measured_at == AT for line in overview_lines(readings))
