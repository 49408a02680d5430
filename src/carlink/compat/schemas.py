"""The facade's wire shapes (reference doc §3) as JSON Schema, for the OpenAPI document only.

The routes keep building plain dicts (`vehicles`, `commands`, `measurements`) and declare these models in
`responses=` with `response_model=None`, so nothing is filtered or re-serialised on the wire: the document
describes the contract, schemathesis checks every answer against it (tests/fuzz), and the contract itself
does not move. Every object allows more keys than it names, as the maker's API does and the clients expect.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelType(Wire):
    code: str
    year: str
    steeringPosition: Literal["LEFT_HAND_DRIVE", "RIGHT_HAND_DRIVE"]
    body: str
    generation: str
    revision: int
    model: str
    engine: Literal["BEV", "PHEV", "COMBUSTION"]


class Color(Wire):
    primaryExteriorColor: str


class VehicleItem(Wire):
    """A1: the clients require vin, modelName, modelType.engine and .year, and connect."""

    vin: str
    modelName: str
    customName: str | None = Field(default=None, description="only when the owner named the car")
    modelType: ModelType
    systemInfo: dict[str, Any]
    exteriorColorName: str
    color: Color
    connect: bool = Field(description="the car is online")
    pairingCodeV2: str


class Status(Wire):
    isEnabled: bool
    cause: Literal["NOT_SUPPORTED", "NOT_CONNECTED", "PRIVACY_ACTIVATED", "UNKNOWN"] | None = None


class Measurement(Wire):
    key: str
    status: Status
    value: dict[str, Any] | None = Field(default=None, description="present when status.isEnabled")


class Capability(Wire):
    key: str
    status: Status
    metadata: dict[str, Any] | None = None


class Overview(VehicleItem):
    """A2-A6: the list item plus one measurement per `mf` key and one capability per `cf` key."""

    timestamp: str
    commands: list[Capability]
    measurements: list[Measurement]


class Picture(Wire):
    url: str
    view: Literal["frontView", "sideView", "rearView", "rearTopView", "topView"]
    size: int
    width: int
    height: int
    transparent: bool


class CommandState(Wire):
    id: str
    result: Literal["ACCEPTED", "IN_PROGRESS", "PERFORMED", "ERROR"]
    message: str | None = Field(default=None, description="why, with ERROR")


class CommandStatus(Wire):
    status: CommandState


class Challenge(Wire):
    challenge: str = Field(description="even-length hex")


class ChallengeAnswer(Wire):
    """SPIN_CHALLENGE's answer: no command to poll."""

    data: Challenge


COMMAND_REQUEST: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string", "examples": ["LOCK", "HONK_FLASH", "SPIN_CHALLENGE"]},
                    "payload": {"type": ["object", "null"]},
                },
            }
        }
    },
}


def _repeated(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
    }


OVERVIEW_PARAMETERS: list[dict[str, Any]] = [
    _repeated("mf", "measurement keys, repeated or comma-separated; `*` for all"),
    _repeated("cf", "capability (command) keys, repeated or comma-separated; `*` for all"),
    {
        "name": "wakeUpJob",
        "in": "query",
        "required": False,
        "description": "any value: wake the car first and answer its fresh state",
        "schema": {"type": "string"},
    },
]
