"""In-car ID login as the car sees it (VEH-7, VEH-8): who drives (an ID or a guest), what each key remembers,
and the cabin settings in use. No broker here: `SimulatedCar` sends the requests and feeds the replies in.

Guest mode keeps everything in the car: nothing is sent to the cloud, the cabin is at the car's defaults,
there are no personal services and no timers (refused here, without asking the cloud).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carlink.protocol.messages import IdLoginReply, IdProfile, IdServiceSettings

GUEST = "guest"
# Codes the car itself gives; the cloud's codes are in docs/protocol.md.
GUEST_NO_TIMERS = "guest_no_timers"
GUEST_NOT_SAVED = "guest_not_saved"
LOGIN_ENDED = "login_ended"

DEFAULT_CABIN = IdProfile(
    seat_position=50,
    mirror_position=50,
    steering_position=50,
    climate_temperature_c=21.0,
    climate_mode="auto",
)
NO_SERVICES = IdServiceSettings(favourites=[], radio_stations=[], weather_places=[])


@dataclass(frozen=True)
class KeyMemory:
    """What one car key remembers: the ID that used it last (its login token) or that a guest did."""

    token: str | None = None
    email: str | None = None

    @property
    def guest(self) -> bool:
        return self.token is None


@dataclass
class Occupant:
    """Who is driving now, and what the car shows them."""

    role: str = GUEST
    email: str | None = None
    token: str | None = None
    cabin: IdProfile = DEFAULT_CABIN
    services: IdServiceSettings = NO_SERVICES

    @property
    def guest(self) -> bool:
        return self.token is None


@dataclass
class IdLoginUnit:
    """The car's ID login system. Keys are named by the test or demo ("key-1", "key-2")."""

    keys: dict[str, KeyMemory] = field(default_factory=dict)
    occupant: Occupant = field(default_factory=Occupant)
    key: str | None = None
    # What the car last told the driver, e.g. that a remembered login has ended.
    notice: str | None = None

    def insert_key(self, key: str) -> str | None:
        """The car starts with `key`: the token to resume, or None when the key belongs to a guest (the
        cabin is then at the car's defaults at once)."""
        self.key = key
        self.notice = None
        memory = self.keys.get(key, KeyMemory())
        if memory.guest:
            self.drive_as_guest()
            return None
        return memory.token

    def drive_as_guest(self) -> None:
        self.occupant = Occupant()
        if self.key is not None:
            self.keys[self.key] = KeyMemory()

    def logged_in(self, reply: IdLoginReply) -> None:
        """A successful login or resume: the cabin takes the ID's profile (car defaults where it has none)
        and the key remembers the ID."""
        token = reply.token or self._memory().token or self.occupant.token
        if not reply.ok or token is None:
            raise ValueError("not a successful login reply")
        profile = reply.profile or IdProfile()
        cabin = DEFAULT_CABIN.model_copy(
            update={k: v for k, v in profile.model_dump().items() if v is not None}
        )
        self.occupant = Occupant(
            role=reply.role or GUEST,
            email=reply.email,
            token=token,
            cabin=cabin,
            services=_full(reply.services),
        )
        if self.key is not None:
            self.keys[self.key] = KeyMemory(token=token, email=reply.email)

    def login_ended(self, message: str | None) -> None:
        """The cloud refused the remembered login (logged out elsewhere, ID deleted): guest, and say so."""
        self.drive_as_guest()
        self.notice = message or "Your login has ended. You are driving as a guest."

    def logged_out(self) -> None:
        self.drive_as_guest()

    def adjust_cabin(self, **values: Any) -> IdProfile:
        """A person moves the seat or sets the climate; validated like the wire message."""
        changed = IdProfile.model_validate(values)
        update = {k: v for k, v in changed.model_dump().items() if v is not None}
        self.occupant.cabin = self.occupant.cabin.model_copy(update=update)
        return changed

    def change_services(self, **lists: list[str]) -> IdServiceSettings:
        changed = IdServiceSettings.model_validate(lists)
        update = {k: v for k, v in changed.model_dump().items() if v is not None}
        self.occupant.services = self.occupant.services.model_copy(update=update)
        return changed

    def timer_refusal(self) -> str | None:
        """Guests get no timers; the car refuses without asking the cloud (VEH-7)."""
        return GUEST_NO_TIMERS if self.occupant.guest else None

    def _memory(self) -> KeyMemory:
        return self.keys.get(self.key, KeyMemory()) if self.key is not None else KeyMemory()


def _full(services: IdServiceSettings | None) -> IdServiceSettings:
    if services is None:
        return NO_SERVICES
    return IdServiceSettings(
        favourites=services.favourites or [],
        radio_stations=services.radio_stations or [],
        weather_places=services.weather_places or [],
    )
