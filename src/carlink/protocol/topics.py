"""Topic names. Cars write only under .../{vin}/up/ and read only under .../{vin}/down/ (broker ACL)."""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1"

UP_ACK = "ack"
UP_TELEMETRY = "telemetry"
UP_CONNECTION = "connection"
UP_REQUEST = "request"
UP_ENTITLEMENTS = "entitlements"
# In-car ID login (VEH-7, VEH-8): the car asks on up/idlogin, the cloud answers on down/idlogin.
UP_ID_LOGIN = "idlogin"
# Data package deliveries (FOD, OTA): the set on down/deliveries, progress reports on up/deliveries.
UP_DELIVERIES = "deliveries"
# Car security (SEC-1..4): alarms and track points up, the alarm acks and the signed security set down.
UP_ALARM = "alarm"
UP_TRACK = "track"
UP_SECURITY = "security"
# Every kind a car may publish: the gateway counts anything else as "unknown", and the uplink fuzz
# (tests/fuzz) builds messages for each of these, so a kind added here is fuzzed as soon as it has a shape.
UPLINK_KINDS = (
    UP_ACK,
    UP_TELEMETRY,
    UP_CONNECTION,
    UP_REQUEST,
    UP_ENTITLEMENTS,
    UP_ID_LOGIN,
    UP_DELIVERIES,
    UP_ALARM,
    UP_TRACK,
    UP_SECURITY,
)
DOWN_COMMAND = "command"
DOWN_REPLY = "reply"
DOWN_ENTITLEMENTS = "entitlements"
DOWN_ID_LOGIN = "idlogin"
DOWN_DELIVERIES = "deliveries"
DOWN_ALARM_ACK = "alarm-ack"
DOWN_SECURITY = "security"


@dataclass(frozen=True)
class Topics:
    prefix: str = "carlink"

    def vehicle(self, vin: str) -> str:
        return f"{self.prefix}/{VERSION}/{vin}"

    def up(self, vin: str, kind: str) -> str:
        return f"{self.vehicle(vin)}/up/{kind}"

    def down(self, vin: str, kind: str) -> str:
        return f"{self.vehicle(vin)}/down/{kind}"

    def events(self) -> str:
        """Cloud-internal: vehicle events from gateway and jobs instances to api instances. Cars have no
        access (their ACL covers only their own VIN's topics)."""
        return f"{self.prefix}/internal/{VERSION}/events"

    def all_uplinks(self, shared_group: str = "") -> str:
        topic = f"{self.prefix}/{VERSION}/+/up/#"
        return f"$share/{shared_group}/{topic}" if shared_group else topic

    def parse_uplink(self, topic: str) -> tuple[str, str] | None:
        """(vin, kind) of an uplink topic, or None for anything else."""
        parts = topic.split("/")
        head = self.prefix.split("/")
        if len(parts) != len(head) + 4 or parts[: len(head)] != head:
            return None
        version, vin, direction, kind = parts[len(head) :]
        if version != VERSION or direction != "up":
            return None
        return vin, kind

    def car_read_pattern(self, user_placeholder: str = "%u") -> str:
        return f"{self.prefix}/{VERSION}/{user_placeholder}/down/#"

    def car_write_pattern(self, user_placeholder: str = "%u") -> str:
        return f"{self.prefix}/{VERSION}/{user_placeholder}/up/#"
