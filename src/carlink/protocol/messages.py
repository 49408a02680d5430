"""JSON messages between car and cloud. Every message carries the schema version `v` (docs/protocol.md)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024


class CommandType(StrEnum):
    LOCK = "LOCK"
    UNLOCK = "UNLOCK"
    HONK_FLASH = "HONK_FLASH"
    CLIMATE_START = "CLIMATE_START"
    CLIMATE_STOP = "CLIMATE_STOP"
    DIRECT_CHARGING_START = "DIRECT_CHARGING_START"
    DIRECT_CHARGING_STOP = "DIRECT_CHARGING_STOP"
    CHARGE_TARGET = "CHARGE_TARGET"
    # Not remote services but the cloud's own: report the full state now (RMT-2 current overview) ...
    WAKE = "WAKE"
    # ... and switch remote-access authorisation off: the main user's security code was reset (VEH-5).
    REMOTE_ACCESS_RESET = "REMOTE_ACCESS_RESET"


class AckState(StrEnum):
    DELIVERED = "delivered"
    PERFORMED = "performed"
    ERROR = "error"


class Network(StrEnum):
    LTE = "LTE"
    UMTS = "3G"
    EDGE = "EDGE"
    WIFI = "WIFI"
    NONE = "NONE"


class RefusalReason(StrEnum):
    BAD_SIGNATURE = "BAD_SIGNATURE"
    EXPIRED = "EXPIRED"
    REPLAYED = "REPLAYED"
    WRONG_VEHICLE = "WRONG_VEHICLE"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    PRIVACY_MODE = "PRIVACY_MODE"
    REMOTE_ACCESS_DISABLED = "REMOTE_ACCESS_DISABLED"
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    NOT_POSSIBLE = "NOT_POSSIBLE"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1


class Command(Message):
    """Cloud -> car. Signed; the car refuses it when the signature, VIN, expiry or id do not hold."""

    id: str = Field(min_length=8, max_length=64)
    vin: str = Field(min_length=17, max_length=17)
    type: CommandType
    params: dict[str, Any] = Field(default_factory=dict)
    issued_at: dt.datetime
    expires_at: dt.datetime
    kid: str = Field(min_length=1, max_length=64)
    sig: str = ""


class Ack(Message):
    """Car -> cloud: what became of a command."""

    command_id: str = Field(min_length=8, max_length=64)
    state: AckState
    reason: str | None = Field(default=None, max_length=200)
    # Car -> cloud times carry an offset (docs/protocol.md "Transport"): a naive one is malformed.
    at: AwareDatetime


class Telemetry(Message):
    """Car -> cloud: measured values, each under its key with its own measurement time."""

    at: AwareDatetime
    values: dict[str, dict[str, Any]] = Field(max_length=64)


class Connection(Message):
    """Car -> cloud, retained; the car's last will publishes online=false."""

    online: bool
    network: Network = Network.NONE
    at: AwareDatetime | None = None


class Request(Message):
    """Car -> cloud: something only the cloud can decide, such as a pairing code typed into the car."""

    id: str = Field(min_length=8, max_length=64)
    kind: Literal["pair"]
    code: str = Field(pattern=r"^[0-9]{8}$")


class Reply(Message):
    """Cloud -> car: the answer to a Request."""

    request_id: str
    ok: bool
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Entitlement(BaseModel):
    """One service the car may offer until `until`; a data package also names its volume (CON-3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    service: str = Field(min_length=1, max_length=64)
    kind: Literal["service", "data_package", "function"] = "service"
    until: dt.datetime
    volume_mb: int | None = Field(default=None, ge=0)


class Entitlements(Message):
    """Cloud -> car, retained: the full set of services the car may offer (STO-7). Signed like a command.

    The car keeps the highest revision it has verified. Added services appear at the car's next restart
    while online; services that left the set end at once (an expired contract ends in the car).
    """

    vin: str = Field(min_length=17, max_length=17)
    revision: int = Field(ge=1)
    issued_at: dt.datetime
    entitlements: list[Entitlement] = Field(max_length=256)
    kid: str = Field(min_length=1, max_length=64)
    sig: str = ""


class EntitlementReport(Message):
    """Car -> cloud: the entitlements revision the car has applied."""

    revision: int = Field(ge=0)
    services: list[str] = Field(default_factory=list, max_length=256)
    at: AwareDatetime


# --- data package deliveries: functions on demand and software updates (docs/protocol.md "Deliveries") ---

DeliveryKind = Literal["function", "update"]
DeliveryReportState = Literal[
    "downloading", "downloaded", "installing", "installed", "activated", "failed", "deactivated"
]


class DeliveryItem(BaseModel):
    """One package the car is to fetch and install: a function (FOD-1) or a software update (OTA-2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int = Field(ge=1)
    kind: DeliveryKind
    package: str = Field(min_length=1, max_length=200)
    function: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=32)
    # FOD-3: the car must have the package by then, else the order is cancelled.
    download_by: dt.datetime | None = None
    # The cloud's view; a car that reported `failed` fetches or installs again after its recovery routine.
    state: str = Field(default="offered", max_length=16)


class Deliveries(Message):
    """Cloud -> car, retained and signed like entitlements: every open delivery of this car.

    A delivery leaves the set once the car installed (update) or activated (function) it, or when the
    cloud cancelled it (the 28-day window passed, the campaign was cancelled).
    """

    vin: str = Field(min_length=17, max_length=17)
    revision: int = Field(ge=1)
    issued_at: dt.datetime
    deliveries: list[DeliveryItem] = Field(max_length=256)
    kid: str = Field(min_length=1, max_length=64)
    sig: str = ""


class DeliveryReport(Message):
    """Car -> cloud: what became of one delivery; `reason` says why it failed (a stable code)."""

    delivery: int = Field(ge=1, le=2**31 - 1)
    state: DeliveryReportState
    reason: str | None = Field(default=None, max_length=200)
    have: int | None = Field(default=None, ge=0, le=2**62)
    length: int | None = Field(default=None, ge=0, le=2**62)
    version: str | None = Field(default=None, max_length=32)
    at: AwareDatetime


# --- car security: theft alarms, tracking, the security set (SEC-1..4; docs/protocol.md "Car security") ---


ALARM_ID = r"^[A-Za-z0-9_-]{8,64}$"


class AlarmTrigger(StrEnum):
    """What raised an alarm. `no_driver_card` is the silent alarm of tracking plus (SEC-2); `test` is the
    alarm the car raises once after its tracking package was installed (SEC-4)."""

    TOWING = "towing"
    TILT = "tilt"
    GLASS_BREAK = "glass_break"
    INTERIOR_MOTION = "interior_motion"
    IGNITION_WITHOUT_KEY = "ignition_without_key"
    MOVING_WHILE_LOCKED = "moving_while_locked"
    NO_DRIVER_CARD = "no_driver_card"
    TEST = "test"


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    heading: int | None = Field(default=None, ge=0, le=359)
    speed_kmh: float | None = Field(default=None, ge=0, le=500)


class AlarmSignal(Message):
    """Car -> cloud on up/alarm: one alarm, re-sent with the same `id` until the cloud acknowledges it.

    `location` is null in privacy mode unless the security set asks for theft tracking."""

    # Letters, digits, '-' and '_' only (a UUID fits): the cloud stores it as the alarm's key.
    id: str = Field(pattern=ALARM_ID)
    trigger: AlarmTrigger
    silent: bool = False
    at: AwareDatetime
    location: Position | None = None


class AlarmAck(Message):
    """Cloud -> car on down/alarm-ack: the alarm with this id is stored; the car stops re-sending it."""

    alarm_id: str = Field(pattern=ALARM_ID)


class TrackPoint(Message):
    """Car -> cloud on up/track: where the car is while the security set asks it to track."""

    at: AwareDatetime
    location: Position


SecurityModeKind = Literal["service", "transport"]
TrackingKind = Literal["off", "alarm", "theft"]


class SecurityMode(BaseModel):
    """Service mode (a workshop) or transport mode: the triggers it covers raise no alarm until `until`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: SecurityModeKind
    until: AwareDatetime


class SecuritySet(Message):
    """Cloud -> car, retained and signed like entitlements: the car's security configuration.

    `package` is the tracking package in force (null: none; the car's own alarm still reports).
    `driver_cards` are the SHA-256 (hex) of the active card serials (tracking plus only). `tracking` asks
    for track points: `alarm` while an alarm is open (never in privacy mode), `theft` for a confirmed theft
    (also in privacy mode, SEC-1)."""

    vin: str = Field(min_length=17, max_length=17)
    revision: int = Field(ge=1)
    issued_at: dt.datetime
    package: Literal["tracking", "tracking-plus"] | None = None
    # The cloud's id of the package's activation: a new one (a package bought again) is a new install.
    activation: int | None = Field(default=None, ge=1, le=2**31 - 1)
    driver_cards: list[str] = Field(default_factory=list, max_length=64)
    mode: SecurityMode | None = None
    tracking: TrackingKind = "off"
    kid: str = Field(min_length=1, max_length=64)
    sig: str = ""


class SecurityReport(Message):
    """Car -> cloud on up/security: the security set revision the car applied (after each change and each
    connect)."""

    revision: int = Field(ge=0, le=2**31 - 1)
    package: Literal["tracking", "tracking-plus"] | None = None
    activation: int | None = Field(default=None, ge=1, le=2**31 - 1)
    at: AwareDatetime


# Telemetry keys (our own vocabulary, close to COVESA VSS; value fields per key in docs/protocol.md).
TELEMETRY_KEYS = frozenset(
    {
        "battery",
        "fuel",
        "range",
        "mileage",
        "lock",
        "doors",
        "location",
        "charging",
        "climate",
        "tyres",
        "privacy",
        "remote_access",
        "parking",
        "hotspot",
    }
)


# --- in-car ID login (VEH-7, VEH-8; docs/protocol.md "In-car ID login") ------------------------------------

IdLoginAction = Literal["login", "resume", "logout", "save", "timer"]
IdLoginRole = Literal["main", "secondary", "visitor"]
ServiceName = Annotated[str, Field(min_length=1, max_length=80)]
MAX_FAVOURITES = 50
MAX_RADIO_STATIONS = 30
MAX_WEATHER_PLACES = 10


class IdProfile(BaseModel):
    """Seat, mirror and steering positions (0-100, the car's scale) and climate of one ID; null = default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seat_position: int | None = Field(default=None, ge=0, le=100)
    mirror_position: int | None = Field(default=None, ge=0, le=100)
    steering_position: int | None = Field(default=None, ge=0, le=100)
    climate_temperature_c: float | None = Field(default=None, ge=15.0, le=30.0)
    climate_mode: Literal["auto", "eco", "comfort", "max"] | None = None


class IdServiceSettings(BaseModel):
    """Service settings that live in the account and follow the ID into any car (VEH-7).

    In a `save` request a list left out (null) stays as it is; a reply always carries all three.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    favourites: list[ServiceName] | None = Field(default=None, max_length=MAX_FAVOURITES)
    radio_stations: list[ServiceName] | None = Field(default=None, max_length=MAX_RADIO_STATIONS)
    weather_places: list[ServiceName] | None = Field(default=None, max_length=MAX_WEATHER_PLACES)


class IdLoginRequest(Message):
    """Car -> cloud on up/idlogin: log in, resume with the key's token, save, ask for a timer, log out.

    Secrets (password, security code, token) are never logged by either side.
    """

    id: str = Field(min_length=8, max_length=64)
    action: IdLoginAction
    email: str | None = Field(default=None, min_length=3, max_length=254)
    password: str | None = Field(default=None, min_length=1, max_length=256, repr=False)
    security_code: str | None = Field(default=None, pattern=r"^[0-9]{4}$", repr=False)
    token: str | None = Field(default=None, min_length=16, max_length=128, repr=False)
    profile: IdProfile | None = None
    services: IdServiceSettings | None = None
    at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _fields_of_action(self) -> IdLoginRequest:
        if self.action == "login":
            if self.email is None or self.password is None or self.token is not None:
                raise ValueError("login carries email and password, and no token")
        elif self.token is None or self.email is not None or self.password is not None:
            raise ValueError(f"{self.action} carries the login token, and no email or password")
        if self.action != "save" and (self.profile is not None or self.services is not None):
            raise ValueError("only save carries profile or services")
        if self.action != "login" and self.security_code is not None:
            raise ValueError("only login carries a security code")
        return self


class IdLoginReply(Message):
    """Cloud -> car on down/idlogin: the answer to an IdLoginRequest with the same id.

    On a successful login or resume it carries the role, the token to keep with the key (login only),
    the ID's profile and its full service settings.
    """

    request_id: str = Field(min_length=8, max_length=64)
    action: IdLoginAction
    ok: bool
    error: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=300)
    role: IdLoginRole | None = None
    email: str | None = Field(default=None, max_length=254)
    token: str | None = Field(default=None, min_length=16, max_length=128, repr=False)
    profile: IdProfile | None = None
    services: IdServiceSettings | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
