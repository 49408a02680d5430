"""Topic names (docs/protocol.md): {prefix}/v1/{vin}/up/{kind} from the car, .../down/{kind} to it."""

from __future__ import annotations

import pytest

from carlink.protocol.topics import Topics

VIN = "WP0ZZZY1ZPS100001"


def test_uplink_and_downlink_topics_name_prefix_version_vin_direction_and_kind() -> None:
    topics = Topics("carlink")
    assert topics.vehicle(VIN) == f"carlink/v1/{VIN}"
    assert topics.up(VIN, "telemetry") == f"carlink/v1/{VIN}/up/telemetry"
    assert topics.down(VIN, "command") == f"carlink/v1/{VIN}/down/command"


@pytest.mark.parametrize("kind", ["ack", "telemetry", "connection", "request"])
def test_an_uplink_topic_parses_back_to_vin_and_kind(kind: str) -> None:
    topics = Topics("carlink")
    assert topics.parse_uplink(topics.up(VIN, kind)) == (VIN, kind)


def test_a_prefix_with_several_levels_parses_too() -> None:
    topics = Topics("fleet/eu-1")
    assert topics.parse_uplink(f"fleet/eu-1/v1/{VIN}/up/ack") == (VIN, "ack")
    assert topics.parse_uplink(f"eu-1/v1/{VIN}/up/ack") is None


@pytest.mark.parametrize(
    "topic",
    [
        f"carlink/v1/{VIN}/down/command",  # a downlink is not an uplink
        f"carlink/v2/{VIN}/up/ack",  # another protocol version
        f"other/v1/{VIN}/up/ack",  # another carlink world on the same broker
        f"carlink/v1/{VIN}/up",  # no kind
        f"carlink/v1/{VIN}/up/ack/extra",  # one level too many
        f"carlink/v1/{VIN}/sideways/ack",
        "carlink",
        "",
    ],
)
def test_anything_else_is_not_an_uplink(topic: str) -> None:
    assert Topics("carlink").parse_uplink(topic) is None


def test_the_gateway_subscribes_to_every_cars_uplinks_plainly_or_in_a_shared_group() -> None:
    topics = Topics("carlink")
    assert topics.all_uplinks() == "carlink/v1/+/up/#"
    assert topics.all_uplinks("gateways") == "$share/gateways/carlink/v1/+/up/#"


def test_broker_acl_patterns_let_a_car_read_its_downlinks_and_write_its_uplinks() -> None:
    topics = Topics("carlink")
    assert topics.car_read_pattern() == "carlink/v1/%u/down/#"
    assert topics.car_write_pattern() == "carlink/v1/%u/up/#"
    assert topics.car_read_pattern("${username}") == "carlink/v1/${username}/down/#"
