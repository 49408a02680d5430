"""In-car ID login without a broker: what the car's keys remember, guest mode, timers refused in the car, the
wire messages' bounds and the cloud's rules for profiles and service settings (VEH-7, VEH-8)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from carlink.errors import CarlinkError
from carlink.incar import rules
from carlink.protocol.messages import IdLoginReply, IdLoginRequest, IdProfile, IdServiceSettings
from carlink.sim.idlogin import DEFAULT_CABIN, GUEST_NO_TIMERS, IdLoginUnit

TOKEN_1 = "token-one-" + "a" * 33
TOKEN_2 = "token-two-" + "b" * 33


def login_reply(token: str | None, email: str, seat: int, role: str = "main") -> IdLoginReply:
    return IdLoginReply(
        request_id="request-1",
        action="login" if token else "resume",
        ok=True,
        role=role,  # type: ignore[arg-type]
        email=email,
        token=token,
        profile=IdProfile(seat_position=seat, climate_mode="eco"),
        services=IdServiceSettings(favourites=["Home"], radio_stations=None, weather_places=[]),
    )


# --- the key remembers (VEH-7) -----------------------------------------------------------------------------


def test_a_new_key_starts_the_car_as_a_guest_with_default_settings() -> None:
    unit = IdLoginUnit()
    assert unit.insert_key("key-1") is None
    assert unit.occupant.guest and unit.occupant.cabin == DEFAULT_CABIN
    assert unit.occupant.services.favourites == []


def test_each_key_remembers_the_id_that_used_it_last() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    unit.logged_in(login_reply(TOKEN_1, "owner@example.com", seat=30))
    unit.insert_key("key-2")
    unit.logged_in(login_reply(TOKEN_2, "family@example.com", seat=70, role="secondary"))
    # The key hands the car the token to resume with; the cloud then answers the current settings.
    assert unit.insert_key("key-1") == TOKEN_1
    unit.logged_in(login_reply(None, "owner@example.com", seat=31))
    assert (unit.occupant.email, unit.occupant.token, unit.occupant.cabin.seat_position) == (
        "owner@example.com",
        TOKEN_1,
        31,
    )
    # Settings the ID has none for stay at the car's defaults.
    assert unit.occupant.cabin.climate_temperature_c == DEFAULT_CABIN.climate_temperature_c
    assert unit.occupant.services.radio_stations == []
    assert unit.insert_key("key-2") == TOKEN_2


def test_a_key_a_guest_used_last_starts_as_a_guest_again() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    unit.logged_in(login_reply(TOKEN_1, "owner@example.com", seat=30))
    unit.logged_out()
    assert unit.occupant.guest and unit.keys["key-1"].guest
    assert unit.insert_key("key-1") is None


def test_an_ended_login_falls_back_to_guest_and_tells_the_driver() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    unit.logged_in(login_reply(TOKEN_1, "owner@example.com", seat=30))
    unit.insert_key("key-1")
    unit.login_ended("this login has ended; log in again or drive as a guest")
    assert unit.occupant.guest and unit.occupant.cabin == DEFAULT_CABIN
    assert unit.keys["key-1"].guest and unit.notice is not None


def test_a_refusal_is_no_login() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    refused = IdLoginReply(request_id="request-1", action="login", ok=False, error="wrong_security_code")
    with pytest.raises(ValueError):
        unit.logged_in(refused)
    assert unit.occupant.guest


# --- guest mode: nothing personal, no timers (VEH-7) -------------------------------------------------------


def test_a_guest_gets_no_timers_from_the_car_itself() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    assert unit.timer_refusal() == GUEST_NO_TIMERS
    unit.logged_in(login_reply(TOKEN_1, "stranger@example.com", seat=40, role="visitor"))
    # For an ID the cloud decides (a visitor's timer is refused there: timers_need_assignment).
    assert unit.timer_refusal() is None


def test_a_guest_can_move_the_seat_but_the_next_guest_starts_from_the_defaults() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    unit.adjust_cabin(seat_position=10, climate_temperature_c=19.0)
    assert unit.occupant.cabin.seat_position == 10
    unit.insert_key("key-1")
    assert unit.occupant.cabin == DEFAULT_CABIN


def test_the_car_refuses_cabin_settings_out_of_range() -> None:
    unit = IdLoginUnit()
    unit.insert_key("key-1")
    with pytest.raises(ValidationError):
        unit.adjust_cabin(seat_position=101)
    with pytest.raises(ValidationError):
        unit.adjust_cabin(climate_mode="tropical")


# --- the wire messages (docs/protocol.md) ------------------------------------------------------------------


def test_login_requests_carry_email_and_password_and_others_the_token() -> None:
    IdLoginRequest(id="request-1", action="login", email="a@example.com", password="secret-pass")
    IdLoginRequest(id="request-1", action="resume", token=TOKEN_1)
    for bad in (
        {"action": "login", "email": "a@example.com"},
        {"action": "login", "email": "a@example.com", "password": "x", "token": TOKEN_1},
        {"action": "resume"},
        {"action": "resume", "token": TOKEN_1, "password": "x"},
        {"action": "timer", "token": TOKEN_1, "profile": {"seat_position": 3}},
        {"action": "resume", "token": TOKEN_1, "security_code": "1234"},
        {"action": "login", "email": "a@example.com", "password": "x", "security_code": "12345"},
        {"action": "teleport", "token": TOKEN_1},
        {"action": "resume", "token": TOKEN_1, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            IdLoginRequest.model_validate({"v": 1, "id": "request-1", **bad})


def test_secrets_never_appear_in_a_messages_repr() -> None:
    request = IdLoginRequest(
        id="request-1", action="login", email="a@example.com", password="secret-pass", security_code="1234"
    )
    assert "secret-pass" not in repr(request) and "1234" not in repr(request)
    reply = IdLoginReply(request_id="request-1", action="login", ok=True, token=TOKEN_1)
    assert TOKEN_1 not in repr(reply)


def test_service_settings_on_the_wire_are_bounded() -> None:
    IdServiceSettings(favourites=["x"] * 50, radio_stations=["y"] * 30, weather_places=["z"] * 10)
    for bad in (
        {"favourites": ["x"] * 51},
        {"radio_stations": ["y"] * 31},
        {"weather_places": ["z"] * 11},
        {"favourites": ["x" * 81]},
        {"favourites": [""]},
    ):
        with pytest.raises(ValidationError):
            IdServiceSettings.model_validate(bad)


# --- the cloud's rules (carlink.incar.rules) ---------------------------------------------------------------


def test_only_users_of_the_car_may_set_timers() -> None:
    assert rules.may_use_timers(rules.MAIN) and rules.may_use_timers(rules.SECONDARY)
    assert not rules.may_use_timers(rules.VISITOR)


def test_profiles_are_checked_and_temperatures_rounded_to_half_degrees() -> None:
    profile = rules.checked_profile({"seat_position": 0, "climate_temperature_c": 21.3})
    assert (profile.seat_position, profile.climate_temperature_c) == (0, 21.5)
    for bad in (
        {"seat_position": -1},
        {"seat_position": True},
        {"mirror_position": "50"},
        {"climate_temperature_c": 40},
        {"climate_mode": "tropical"},
        {"heated_seats": True},
    ):
        with pytest.raises(CarlinkError) as refused:
            rules.checked_profile(bad)
        assert refused.value.code == "invalid_profile"


def test_service_lists_are_cleaned_deduplicated_and_bounded() -> None:
    assert rules.checked_service_settings({"favourites": ["  Home ", "home", "Office"]}) == {
        "favourites": ["Home", "Office"]
    }
    with pytest.raises(CarlinkError) as too_many:
        rules.checked_service_settings({"weather_places": [f"Place {n}" for n in range(11)]})
    assert too_many.value.code == "too_many_service_settings"
    for bad in ({"podcasts": []}, {"favourites": "Home"}, {"favourites": [""]}, {"favourites": ["x" * 81]}):
        with pytest.raises(CarlinkError):
            rules.checked_service_settings(bad)


def test_the_security_code_locks_every_fifth_wrong_code_for_twice_as_long_up_to_a_day() -> None:
    # REQ: VEH-8 — an hour, then two, four, ... at most a day; no lock between the fifths.
    assert [rules.code_lock_minutes(n) for n in (1, 4, 5, 6, 10, 15)] == [None, None, 60, None, 120, 240]
    assert rules.code_lock_minutes(5 * 20) == 24 * 60
    assert rules.code_lock_minutes(0) is None
