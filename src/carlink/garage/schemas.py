"""JSON shapes of the garage API (/api/v1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from carlink.garage.models import VehicleUser
from carlink.garage.service import GarageEntry
from carlink.identity.models import Account


class ModelOut(BaseModel):
    key: str
    line: str
    generation: str
    name: str
    engine: str
    year: int


class CapabilitiesOut(BaseModel):
    data_connections: list[str]
    esim_only: bool
    roaming_automatic: bool
    pairing_code_needed: bool
    in_car_id_login: bool
    privacy_scope: str
    connection_symbol: str
    remote_access_authorisation_required: bool
    commands: list[str]
    measurements: list[str]


class ConnectionOut(BaseModel):
    online: bool
    network: str = Field(description="LTE, 3G, EDGE, WIFI or NONE")
    last_seen_at: dt.datetime | None


class VehicleOut(BaseModel):
    vin: str
    name: str
    custom_name: str
    color: str
    model: ModelOut
    role: str
    pairing_code: str = Field(description="8 digits; typed into the car to link it to this ID (VEH-3)")
    paired: bool
    connection: ConnectionOut
    privacy_mode: bool
    remote_access_authorised: bool
    capabilities: CapabilitiesOut


class UserOut(BaseModel):
    account_id: int
    email: str
    role: str


class VehicleDetailOut(VehicleOut):
    users: list[UserOut] | None = Field(default=None, description="shown to the main user only")


class ReadingOut(BaseModel):
    value: dict[str, Any]
    measured_at: dt.datetime


class StatusOut(BaseModel):
    vin: str
    connection: ConnectionOut
    privacy_mode: bool
    values: dict[str, ReadingOut]


class AddUserIn(BaseModel):
    email: str = Field(max_length=254)


def vehicle_out(entry: GarageEntry) -> dict[str, Any]:
    vehicle, model, variant = entry.vehicle, entry.model, entry.variant
    return {
        "vin": vehicle.vin,
        "name": vehicle.custom_name or variant.name,
        "custom_name": vehicle.custom_name,
        "color": vehicle.color,
        "model": {
            "key": model.key,
            "line": model.line,
            "generation": model.generation,
            "name": variant.name,
            "engine": variant.engine.value,
            "year": vehicle.model_year,
        },
        "role": entry.membership.role,
        "pairing_code": entry.membership.pairing_code,
        "paired": entry.membership.paired_at is not None,
        "connection": connection_out(entry),
        "privacy_mode": vehicle.privacy_mode,
        "remote_access_authorised": vehicle.remote_access_authorised,
        "capabilities": {
            "data_connections": [c.value for c in model.data_connections],
            "esim_only": model.esim_only,
            "roaming_automatic": model.roaming_automatic,
            "pairing_code_needed": model.pairing_code_needed,
            "in_car_id_login": model.in_car_id_login,
            "privacy_scope": model.privacy_scope.value,
            "connection_symbol": model.symbol_position.value,
            "remote_access_authorisation_required": model.remote_access_authorisation_required,
            "commands": model.remote_services(variant.engine),
            "measurements": sorted(model.measurements(variant.engine)),
        },
    }


def connection_out(entry: GarageEntry) -> dict[str, Any]:
    vehicle = entry.vehicle
    return {"online": vehicle.online, "network": vehicle.network, "last_seen_at": vehicle.last_seen_at}


def users_out(rows: list[tuple[VehicleUser, Account]]) -> list[dict[str, Any]]:
    return [{"account_id": account.id, "email": account.email, "role": m.role} for m, account in rows]
