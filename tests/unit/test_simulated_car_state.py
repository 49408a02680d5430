"""The simulated car's state moves with time like a real car's (RMT-2: realistic, model-dependent state)."""

from __future__ import annotations

from carlink.protocol.catalogue import find_variant
from carlink.sim.state import CLIMATE_MINUTES, CarState

TAYCAN_VIN = "WP0ZZZY10PS100001"


def _taycan() -> CarState:
    model, variant = find_variant("Y1ADB1")
    return CarState.for_vehicle(TAYCAN_VIN, model, variant)


def test_a_plugged_in_car_charges_towards_its_target_and_stops_there() -> None:
    state = _taycan()
    state.plugged, state.battery, state.target_soc = True, 50.0, 80
    state.advance(3600)  # an hour at 11 kW into 93.4 kWh: about 11.8 %
    assert 61 < state.battery < 62
    assert state.values()["charging"]["status"] == "CHARGING"
    state.advance(10 * 3600)
    assert state.battery == 80.0
    assert state.values()["charging"]["status"] == "CHARGING_COMPLETED"


def test_direct_charging_goes_past_the_target_to_full() -> None:
    state = _taycan()
    state.plugged, state.battery, state.target_soc, state.charging_mode = True, 70.0, 80, "DIRECT"
    state.advance(10 * 3600)
    assert state.battery == 100.0


def test_a_car_without_the_cable_does_not_charge() -> None:
    state = _taycan()
    state.plugged, state.battery = False, 40.0
    state.advance(3600)
    assert state.battery == 40.0
    assert state.values()["charging"]["status"] == "NOT_PLUGGED"


def test_remote_climate_runs_down_and_stops_by_itself() -> None:
    state = _taycan()
    state.start_climate(22.0, {"front_left": True})
    assert state.values()["climate"]["remaining_min"] == CLIMATE_MINUTES
    state.advance(10 * 60)
    assert state.values()["climate"]["remaining_min"] == 20
    state.advance(25 * 60)
    assert state.values()["climate"]["active"] is False
