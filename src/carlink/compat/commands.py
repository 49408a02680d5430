"""Remote commands of the maker's app API mapped onto our command types, and their capabilities (RMT-4).

The wire shapes are those of reference doc §3.3 and §3.5: a command is `{"key", "payload"}`, its answer
`{"status": {"id", "result": "ACCEPTED"}}`, and polling it yields `PERFORMED` or `ERROR` in the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carlink.errors import CarlinkError
from carlink.garage.service import GarageEntry
from carlink.protocol.messages import CommandType
from carlink.remote.models import RemoteCommand
from carlink.remote.rules import CommandState

from .measurements import KELVIN, PROFILE_ID

SPIN_CHALLENGE = "SPIN_CHALLENGE"
UNLOCK = "UNLOCK"
# The target temperatures remote.service.checked_params accepts, in °C; the clients speak Kelvin.
CLIMATE_MIN_C, CLIMATE_MAX_C = 15.0, 30.0

WIRE_COMMANDS: dict[str, CommandType] = {
    "LOCK": CommandType.LOCK,
    UNLOCK: CommandType.UNLOCK,
    SPIN_CHALLENGE: CommandType.UNLOCK,  # the PIN challenge exists only for unlocking
    "HONK_FLASH": CommandType.HONK_FLASH,
    "REMOTE_CLIMATIZER_START": CommandType.CLIMATE_START,
    "REMOTE_CLIMATIZER_STOP": CommandType.CLIMATE_STOP,
    "DIRECT_CHARGING_START": CommandType.DIRECT_CHARGING_START,
    "DIRECT_CHARGING_STOP": CommandType.DIRECT_CHARGING_STOP,
    # Our cars have one charge target; both editors of the app API set it (reference §3.5, HA's target_soc).
    "CHARGING_SETTINGS_EDIT": CommandType.CHARGE_TARGET,
    "CHARGING_PROFILES_EDIT": CommandType.CHARGE_TARGET,
}

# Commands the clients know that our cars do not offer: answered NOT_SUPPORTED in capabilities.
UNSERVED_COMMANDS = """
    BIDIRECTIONAL_CHARGING_V2L_ABSENCE_EDIT BLEID_AGREEMENT_GIVE BLEID_AGREEMENT_REVOKE
    BLEID_DEVICEKEY_UPLOAD B_CALL_TRIGGER CHARGING_SETTINGS_AUTOPLUG_EDIT
    CHARGING_SETTINGS_BATTERYCAREMODE_EDIT CHARGING_SETTINGS_CERTIFICATES_RESET CHARGING_START CHARGING_STOP
    CS_ACCOUNT_FEDERATION CS_APP_SHOP_ENABLE CS_APP_SHOP_UPLOAD CS_C2P_IN_VEHICLE_INFOTAINMENT
    CS_CUSTOMER_CONNECTIVITY_DEVICE CS_DATA_PASS CS_DESTINATION_SYNC CS_PCM_ACCOUNT_SERVICES CS_PCM_CALENDAR
    CS_PILOTED_PARKING CS_VIDEOSTREAMING_VOUCHER CS_VOICE_MIMIC CS_YOUNITED DEPARTURES_EDIT
    DESTINATIONS_DELETE DESTINATIONS_EDIT LOCATION_ALARMS_EDIT MDK_CARD_DISABLE MDK_UNPAIR
    OTA_UPDATE_REMOTE_START POI_SEND_TO_CAR PRED_PRECON_LOCATION_EXCEPTION_EDIT
    PRED_PRECON_USER_SETTINGS_EDIT REMOTE_ACV_START REMOTE_ACV_STOP REMOTE_HEATING_START REMOTE_HEATING_STOP
    ROUTE_CALCULATE SERVICE_PREDICTIONS_RESET SERVICE_PREDICTIONS_VISIBILITY_EDIT SPEED_ALARMS_EDIT
    SPIN_VALIDATION TIMERS_DISABLE TIMERS_EDIT TRUNK_UNLOCK VALET_ALARM_DISABLE VALET_ALARM_EDIT
    VTS_CONFIGURATION_EDIT WINDOWS_SUNROOF_CLOSE WINDOWS_SUNROOF_OPEN WINDOWS_SUNROOF_VENT
"""
# Every command name either client generation asks about (reference doc §2), so that `cf=*` answers all.
KNOWN_COMMANDS: tuple[str, ...] = tuple(sorted({*WIRE_COMMANDS, *UNSERVED_COMMANDS.split()}))

# Our command lifecycle (remote.rules) in the words the clients poll for; anything but PERFORMED and ERROR
# means "keep polling" to them.
RESULTS: dict[CommandState, str] = {
    CommandState.ACCEPTED: "ACCEPTED",
    CommandState.DELIVERED: "IN_PROGRESS",
    CommandState.PERFORMED: "PERFORMED",
    CommandState.ERROR: "ERROR",
    CommandState.EXPIRED: "ERROR",
}


@dataclass(frozen=True)
class WireCommand:
    key: str
    payload: dict[str, Any]


def parse(body: Any) -> WireCommand:
    if not isinstance(body, dict) or not isinstance(body.get("key"), str):
        raise CarlinkError('a command is {"key": <command>, "payload": {...}}', code="invalid_command")
    payload = body.get("payload")
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise CarlinkError("the command's payload is a JSON object", code="invalid_command")
    return WireCommand(body["key"].strip().upper(), payload)


def command_type(key: str) -> CommandType:
    kind = WIRE_COMMANDS.get(key)
    if kind is None:
        raise CarlinkError(f"{key} is not a remote service of this platform", code="not_supported")
    return kind


def params(command: WireCommand) -> dict[str, Any]:
    """Our command's params from the client's payload; the remote service validates them (checked_params)."""
    payload = command.payload
    if command.key == "HONK_FLASH":
        return {"mode": payload.get("mode") or "HONK_AND_FLASH"}
    if command.key == "REMOTE_CLIMATIZER_START":
        result: dict[str, Any] = {}
        kelvin = payload.get("targetTemperature")
        if kelvin is not None:
            if isinstance(kelvin, bool) or not isinstance(kelvin, int | float):
                raise CarlinkError("targetTemperature is a number in Kelvin", code="invalid_parameters")
            result["target_temperature_c"] = round(float(kelvin) - KELVIN, 1)
        zones = payload.get("climateZonesEnabled") or {}
        if not isinstance(zones, dict):
            raise CarlinkError(
                "climateZonesEnabled maps seat zones to true or false", code="invalid_parameters"
            )
        names = {
            "frontLeft": "front_left",
            "frontRight": "front_right",
            "rearLeft": "rear_left",
            "rearRight": "rear_right",
        }
        result["zones"] = {names.get(str(k), str(k)): v for k, v in zones.items()}
        return result
    if command.key == "CHARGING_SETTINGS_EDIT":
        return {"target_soc": payload.get("targetSoc")}
    if command.key == "CHARGING_PROFILES_EDIT":
        return {"target_soc": _profile_target(payload.get("list"))}
    return {}


def _profile_target(profiles: Any) -> Any:
    """The edited minimum SoC of our one profile (or of the enabled one, if the client renumbered it)."""
    if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
        raise CarlinkError("list holds the charging profiles", code="invalid_parameters")
    ours = next((p for p in profiles if p.get("id") == PROFILE_ID), None)
    ours = ours or next((p for p in profiles if p.get("isEnabled") is True), None)
    if ours is None:
        raise CarlinkError(
            f"charging profile {PROFILE_ID} is missing from the list", code="invalid_parameters"
        )
    return ours.get("minSoc")


def spin(command: WireCommand) -> tuple[str, str]:
    """The PIN challenge and the client's SHA-512 answer from an UNLOCK payload."""
    answer = command.payload.get("spin")
    if not isinstance(answer, dict) or not all(isinstance(answer.get(k), str) for k in ("challenge", "hash")):
        raise CarlinkError("unlocking needs the security PIN: answer a SPIN_CHALLENGE", code="pin_required")
    challenge, digest = str(answer["challenge"]), str(answer["hash"])
    if not (_is_hex(challenge) and _is_hex(digest)):
        raise CarlinkError("the challenge and its hash are hexadecimal", code="invalid_parameters")
    return challenge, digest


def _is_hex(text: str) -> bool:
    return 0 < len(text) <= 256 and all(c in "0123456789abcdefABCDEF" for c in text)


def status(row: RemoteCommand) -> dict[str, Any]:
    state = CommandState(row.state)
    body: dict[str, Any] = {"id": row.id, "result": RESULTS[state]}
    if state in (CommandState.ERROR, CommandState.EXPIRED) and row.reason:
        body["message"] = row.reason
    return {"status": body}


def capability(key: str, entry: GarageEntry) -> dict[str, Any]:
    """One item of `commands[]`: what the model can do (VEH-1), and whether it can be used right now."""
    kind = WIRE_COMMANDS.get(key)
    item: dict[str, Any] = {"key": key}
    if kind is None or kind not in entry.model.commands(entry.variant.engine):
        item["status"] = {"isEnabled": False, "cause": "NOT_SUPPORTED"}
        return item
    vehicle = entry.vehicle
    if vehicle.privacy_mode:
        item["status"] = {"isEnabled": False, "cause": "PRIVACY_ACTIVATED"}
    elif not vehicle.online:
        item["status"] = {"isEnabled": False, "cause": "NOT_CONNECTED"}
    elif not remote_access(entry):
        item["status"] = {"isEnabled": False, "cause": "UNKNOWN"}
    else:
        item["status"] = {"isEnabled": True}
    if kind is CommandType.CLIMATE_START:
        item["metadata"] = {
            "minTemperature": round(CLIMATE_MIN_C + KELVIN, 2),
            "maxTemperature": round(CLIMATE_MAX_C + KELVIN, 2),
        }
    return item


def remote_access(entry: GarageEntry) -> bool:
    """Remote services are usable by this caller: the main user (VEH-4) of a car that authorised them
    (VEH-5)."""
    authorised = (
        entry.vehicle.remote_access_authorised or not entry.model.remote_access_authorisation_required
    )
    return entry.is_main_user and authorised


def capabilities(keys: list[str], entry: GarageEntry) -> list[dict[str, Any]]:
    return [capability(key, entry) for key in keys]
