"""A simulated car's state, model-dependent and deterministic per VIN."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carlink.protocol.catalogue import Engine, ModelProfile, Variant
from carlink.protocol.messages import Entitlement, Position

CITIES = {
    "DE": (48.7758, 9.1829),
    "JP": (35.6762, 139.6503),
    "GB": (51.5072, -0.1276),
    "US": (34.0522, -118.2437),
    "FR": (48.8566, 2.3522),
}
WHEELS = ("front_left", "front_right", "rear_left", "rear_right")
CHARGER_KW = 11.0  # a wallbox at home
BATTERY_KWH = {Engine.BEV: 93.4, Engine.PHEV: 17.9}
CLIMATE_MINUTES = 30.0  # a remote climate session runs this long, then stops by itself
TWO_DOORS = ("front_left", "front_right", "lid_front", "lid_rear")
FOUR_DOORS = ("front_left", "front_right", "rear_left", "rear_right", "lid_front", "lid_rear", "sunroof")
# While the WiFi hotspot is shared, a passenger's phone uses this much of the data package per simulated
# minute (music streaming): a fixed rate, so tests and the demo see the same numbers.
HOTSPOT_MB_PER_MINUTE = 2
KM_PER_DEGREE = 111.32  # along a meridian; along a parallel times cos(latitude)


@dataclass
class CarState:
    engine: Engine
    measurements: frozenset[str]
    locked: bool = True
    doors_open: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FOUR_DOORS, False))
    battery: float = 0.0
    fuel: float = 0.0
    mileage: int = 0
    lat: float = 0.0
    lon: float = 0.0
    heading: int = 0
    plugged: bool = False
    charging_mode: str = "PROFILE"
    target_soc: int = 80
    climate_on: bool = False
    climate_minutes_left: float = 0.0
    climate_temperature: float = 21.0
    climate_zones: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(WHEELS, False))
    tyres: dict[str, float] = field(default_factory=dict)
    privacy_mode: bool = False
    remote_access: bool = True
    parking_brake: bool = True
    parking_light: bool = False
    # Drive-ready and the person in the car (FOD-5): selector position, power, someone in the car.
    gear: str = "P"  # "P" or "D"
    power_on: bool = False
    occupied: bool = False
    hotspot_sharing: bool = False
    hotspot_used_mb: int = 0  # shared in the data package's current term, or its last one when none is left
    hotspot_package: str | None = None  # service code of the applied data package (CON-3)
    hotspot_volume_mb: int | None = None
    hotspot_term_until: dt.datetime | None = None
    hotspot_carry_seconds: float = 0.0  # sharing time short of a whole MB, carried into the next advance
    # A trip under way (a thief driving the car off, SEC-1): the car moves along its heading as time passes.
    speed_kmh: float = 0.0
    trip_km_left: float = 0.0
    mileage_carry_km: float = 0.0  # distance short of a whole km, carried into the next move

    @classmethod
    def for_vehicle(cls, vin: str, model: ModelProfile, variant: Variant, country: str = "DE") -> CarState:
        rng = random.Random(vin)
        lat, lon = CITIES.get(country, CITIES["DE"])
        state = cls(engine=variant.engine, measurements=model.measurements(variant.engine))
        if variant.body in ("COUPE", "ROADSTER"):
            state.doors_open = dict.fromkeys(TWO_DOORS, False)
        state.mileage = rng.randint(3_000, 90_000)
        state.lat = round(lat + rng.uniform(-0.05, 0.05), 6)
        state.lon = round(lon + rng.uniform(-0.05, 0.05), 6)
        state.heading = rng.randint(0, 359)
        state.tyres = {wheel: round(rng.uniform(2.5, 2.9), 1) for wheel in WHEELS}
        if variant.engine is not Engine.COMBUSTION:
            state.battery = float(rng.randint(35, 90))
            state.plugged = rng.random() < 0.5
        if variant.engine is not Engine.BEV:
            state.fuel = float(rng.randint(20, 95))
        return state

    def start_climate(self, temperature: float, zones: dict[str, bool]) -> None:
        self.climate_on = True
        self.climate_temperature = temperature
        self.climate_zones.update(zones)
        self.climate_minutes_left = CLIMATE_MINUTES

    def set_hotspot_package(self, package: Entitlement | None) -> bool:
        """Follows the applied data package; True when the `hotspot` value changed (report it)."""
        before = self._hotspot()
        if package is None:
            self.hotspot_package = self.hotspot_volume_mb = self.hotspot_term_until = None
            self.hotspot_sharing = False  # REQ: CON-3 — no package, no sharing: only app-to-car data
            return self._hotspot() != before
        if (package.service, package.until) != (self.hotspot_package, self.hotspot_term_until):
            # A new package or a renewed term starts unused: unused volume does not carry over.
            self.hotspot_used_mb, self.hotspot_carry_seconds = 0, 0.0
        self.hotspot_package, self.hotspot_volume_mb = package.service, package.volume_mb
        self.hotspot_term_until = package.until
        return self._hotspot() != before

    def share_hotspot(self, on: bool) -> bool:
        """Switches hotspot sharing; switching it on needs an applied data package (CON-3)."""
        if on and self.hotspot_package is None:
            return False
        self.hotspot_sharing = on
        return True

    def drive(self) -> None:
        """A person gets in and drives off: unlocked, power on, selector in D, parking brake released."""
        self.occupied, self.locked, self.power_on = True, False, True
        self.gear, self.parking_brake = "D", False

    def park_and_leave(self) -> None:
        """The driver parks (P, parking brake on), switches off, gets out, closes every door and locks."""
        self.gear, self.parking_brake, self.power_on = "P", True, False
        self.occupied = False
        self.doors_open = dict.fromkeys(self.doors_open, False)
        self.locked = True
        self.trip_km_left, self.speed_kmh = 0.0, 0.0

    def drive_off_without_key(self) -> None:
        """Someone starts the locked car without its key and drives: it stays locked (no key opened it)."""
        self.occupied, self.power_on = True, True
        self.gear, self.parking_brake = "D", False

    @property
    def moving(self) -> bool:
        return self.trip_km_left > 0

    def start_trip(self, km: float, speed_kmh: float) -> None:
        """The car sets off for `km` at `speed_kmh`; `move` takes it along as time passes."""
        self.trip_km_left, self.speed_kmh = max(0.0, km), speed_kmh if km > 0 else 0.0

    def move(self, seconds: float) -> None:
        """The trip goes on for `seconds`: the car moves along its heading and stops at the trip's end."""
        if not self.moving:
            return
        km = min(self.trip_km_left, self.speed_kmh * seconds / 3600)
        self.displace(km)
        self.trip_km_left = max(0.0, self.trip_km_left - km)
        if not self.moving:
            self.speed_kmh = 0.0

    def displace(self, km: float) -> None:
        """The car is `km` further along its heading (driven, or carried off on a tow truck)."""
        heading = math.radians(self.heading)
        self.lat = round(self.lat + km * math.cos(heading) / KM_PER_DEGREE, 6)
        self.lon = round(
            self.lon + km * math.sin(heading) / (KM_PER_DEGREE * math.cos(math.radians(self.lat))), 6
        )
        carried = round(self.mileage_carry_km + km, 6)  # no float dust: 10 x 0.5 km is 5 km
        self.mileage += int(carried)
        self.mileage_carry_km = carried - int(carried)

    def position(self) -> Position:
        """Where the car is now, for an alarm or a track point (the car decides whether to send it)."""
        speed = round(self.speed_kmh, 1) if self.moving else 0.0
        return Position(lat=self.lat, lon=self.lon, heading=self.heading, speed_kmh=speed)

    def advance(self, seconds: float) -> None:
        """Time passes: a plugged-in car charges towards its target, a climate session runs down, a shared
        hotspot uses data."""
        if self.charging_status == "CHARGING" and self.engine in BATTERY_KWH:
            limit = 100 if self.charging_mode == "DIRECT" else self.target_soc
            gained = CHARGER_KW * seconds / 3600 / BATTERY_KWH[self.engine] * 100
            self.battery = min(float(limit), self.battery + gained)
        if self.climate_on:
            self.climate_minutes_left = max(0.0, self.climate_minutes_left - seconds / 60)
            self.climate_on = self.climate_minutes_left > 0
        if self.hotspot_sharing:
            seconds_per_mb = 60 / HOTSPOT_MB_PER_MINUTE
            shared = self.hotspot_carry_seconds + seconds
            used = int(shared // seconds_per_mb)
            self.hotspot_used_mb += used
            self.hotspot_carry_seconds = shared - used * seconds_per_mb

    @property
    def e_range_km(self) -> int:
        per_percent = 4.3 if self.engine is Engine.BEV else 0.45
        return int(self.battery * per_percent)

    @property
    def charging_status(self) -> str:
        if not self.plugged:
            return "NOT_PLUGGED"
        if self.battery >= (100 if self.charging_mode == "DIRECT" else self.target_soc):
            return "CHARGING_COMPLETED"
        return "CHARGING"

    def values(self, keys: frozenset[str] | None = None) -> dict[str, dict[str, Any]]:
        """Telemetry values in the protocol vocabulary (docs/protocol.md), for the model's measurements."""
        wanted = self.measurements if keys is None else self.measurements & keys
        values: dict[str, dict[str, Any]] = {}
        builders: dict[str, Callable[[], dict[str, Any]]] = {
            "battery": lambda: {"percent": int(self.battery)},
            "fuel": lambda: {"percent": int(self.fuel)},
            "range": self._range,
            "mileage": lambda: {"km": self.mileage},
            "lock": lambda: {"locked": self.locked},
            "doors": lambda: {"open": dict(self.doors_open)},
            "location": lambda: {"lat": self.lat, "lon": self.lon, "heading": self.heading},
            "charging": self._charging,
            "climate": lambda: {
                "active": self.climate_on,
                "target_temperature_c": self.climate_temperature,
                "remaining_min": round(self.climate_minutes_left) if self.climate_on else 0,
                "zones": dict(self.climate_zones),
            },
            "tyres": lambda: {w: {"bar": bar, "target_bar": 2.7} for w, bar in self.tyres.items()},
            "privacy": lambda: {"enabled": self.privacy_mode},
            "remote_access": lambda: {"authorised": self.remote_access},
            "parking": lambda: {"brake_on": self.parking_brake, "light_on": self.parking_light},
            "hotspot": self._hotspot,
        }
        for key in sorted(wanted):
            if key == "location" and self.privacy_mode:
                continue  # REQ: VEH-6 — the car withholds its position in privacy mode
            values[key] = builders[key]()
        return values

    def _hotspot(self) -> dict[str, Any]:
        return {
            "sharing": self.hotspot_sharing,
            "used_mb": self.hotspot_used_mb,
            "package": self.hotspot_package,
            "volume_mb": self.hotspot_volume_mb,
        }

    def _range(self) -> dict[str, Any]:
        fuel_km = int(self.fuel * 6.5) if self.engine is not Engine.BEV else 0
        electric = self.e_range_km if self.engine is not Engine.COMBUSTION else 0
        return {"total_km": fuel_km + electric, "electric_km": electric, "fuel_km": fuel_km}

    def _charging(self) -> dict[str, Any]:
        status = self.charging_status
        power = CHARGER_KW if status == "CHARGING" else 0.0
        return {
            "plugged": self.plugged,
            "status": status,
            "mode": self.charging_mode,
            "target_soc": self.target_soc,
            "power_kw": power,
            "rate_km_per_min": round(power / 20 * 1.6, 2) if power else 0.0,
            "target_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat() if power else None,
        }
