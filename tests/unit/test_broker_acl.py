"""The embedded broker's ACL: a car writes only its own uplinks and reads only its own downlinks."""

from __future__ import annotations

import pytest
from amqtt.contexts import Action

from carlink.gateway.credentials import GATEWAY_USER, car_password, check_password, gateway_password
from carlink.gateway.embedded import car_may

PREFIX = "carlink"
CAR = "WP0ZZZY1ZPS100001"
OTHER = "WP0ZZZ97ZJS200002"


def test_a_car_publishes_on_its_own_uplinks() -> None:
    for kind in ("ack", "telemetry", "connection", "request"):
        assert car_may(CAR, f"{PREFIX}/v1/{CAR}/up/{kind}", Action.PUBLISH, PREFIX)


def test_a_car_subscribes_to_its_own_downlinks() -> None:
    assert car_may(CAR, f"{PREFIX}/v1/{CAR}/down/#", Action.SUBSCRIBE, PREFIX)
    assert car_may(CAR, f"{PREFIX}/v1/{CAR}/down/command", Action.SUBSCRIBE, PREFIX)


@pytest.mark.parametrize(
    "topic",
    [
        f"{PREFIX}/v1/{OTHER}/up/telemetry",  # posing as another car
        f"{PREFIX}/v1/{CAR}/down/command",  # forging a command to itself
        f"{PREFIX}/v1/{OTHER}/down/command",
        f"{PREFIX}/v1/{CAR}/up",
        f"other/v1/{CAR}/up/telemetry",  # another carlink world
        f"{PREFIX}/v2/{CAR}/up/telemetry",
        f"{PREFIX}/v1/+/up/telemetry",
        "#",
    ],
)
def test_a_car_may_not_publish_anywhere_else(topic: str) -> None:
    assert not car_may(CAR, topic, Action.PUBLISH, PREFIX)


@pytest.mark.parametrize(
    "topic",
    [
        f"{PREFIX}/v1/{OTHER}/down/#",  # listening to another car's commands
        f"{PREFIX}/v1/{OTHER}/down/command",
        f"{PREFIX}/v1/{CAR}/up/#",
        f"{PREFIX}/v1/+/down/#",
        f"{PREFIX}/v1/#",
        "#",
        f"$share/g/{PREFIX}/v1/{CAR}/down/#",
    ],
)
def test_a_car_may_not_subscribe_anywhere_else(topic: str) -> None:
    assert not car_may(CAR, topic, Action.SUBSCRIBE, PREFIX)


def test_a_vin_that_is_a_prefix_of_another_gives_no_access_to_it() -> None:
    assert not car_may(CAR[:-1], f"{PREFIX}/v1/{CAR}/up/telemetry", Action.PUBLISH, PREFIX)


def test_the_gateway_reads_and_writes_everything() -> None:
    assert car_may(GATEWAY_USER, f"{PREFIX}/v1/{CAR}/down/command", Action.PUBLISH, PREFIX)
    assert car_may(GATEWAY_USER, f"$share/g/{PREFIX}/v1/+/up/#", Action.SUBSCRIBE, PREFIX)


def test_broker_passwords_are_derived_per_car_and_checked_without_a_lookup() -> None:
    secret = "broker-secret-0123456789"
    assert check_password(secret, CAR, car_password(secret, CAR))
    assert not check_password(secret, OTHER, car_password(secret, CAR))
    assert not check_password("another-secret-0123456", CAR, car_password(secret, CAR))
    assert check_password(secret, GATEWAY_USER, gateway_password(secret))
    assert not check_password(secret, GATEWAY_USER, car_password(secret, GATEWAY_USER))
    assert len(car_password(secret, CAR)) == 32
