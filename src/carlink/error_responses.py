"""How refusals appear in the OpenAPI document, so a client can rely on it (issue 9: fuzzing with schemathesis
finds every status the document does not name).

Every /api/v1 refusal carries `{"error": {"code", "message", "details"?}}` (`carlink.app.error_body`;
`details` only with `invalid_request`); the compatibility facade answers `{"error": <code>, "message"}` with a
status the community clients know (docs/compat.md). `API_ERRORS` are the statuses any /api/v1 route may
answer, from the edge and from identity; a route adds the ones of its own use case with `errors(...)` in
`responses=`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    field: str = Field(description="where: the field's dotted path in the body, or the parameter's name")
    problem: str


class Error(BaseModel):
    code: str = Field(description="stable, for programs (`vehicle_not_found`, `invalid_request`, …)")
    message: str = Field(description="for people, in the caller's language")
    details: list[Problem] | None = Field(default=None, description="only with `invalid_request`")


class ErrorBody(BaseModel):
    error: Error


class WireError(BaseModel):
    """The compatibility facade's refusal (reference doc §1): the message stays English."""

    error: str = Field(description="our stable code")
    message: str


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}
DESCRIPTIONS = {
    400: "Malformed: a body that is not JSON, a value of the wrong shape (an invalid VIN, say), text that "
    "cannot be stored",
    401: "No valid access token, or a wrong password or PIN answer",
    403: "Signed in, but this person may not do this",
    404: "No such object for this caller (someone else's is answered the same)",
    405: "Remote access is off for this caller (privacy mode, not authorised in the car, not the main user)",
    408: "The car is offline",
    409: "The object's state does not allow this now",
    410: "The link was used, replaced or has expired",
    413: "The request body is larger than 1 MiB",
    422: "The request does not have the expected fields, or a value breaks a rule of the use case",
    423: "Locked after too many wrong answers",
    429: "Too many requests; Retry-After says when to try again",
}


def errors(*statuses: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the given refusal statuses."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        declared[status] = {"model": model, "description": DESCRIPTIONS[status]}
        if status == 429:
            declared[status]["headers"] = RETRY_AFTER
    return declared


# Any /api/v1 route: the edge (JSON, size, field validation), identity (token, role) and the lookup of the
# object the path names.
API_ERRORS = errors(400, 401, 403, 404, 413, 422)
# The facade folds every refusal into the statuses of reference doc §1 (compat.api.wire_status).
WIRE_ERRORS = errors(400, 401, 404, 405, 408, 423, 429, model=WireError)


def for_prefix(prefix: str) -> dict[int | str, dict[str, Any]]:
    """The refusals a router of this prefix declares on every route (none for pages, not in the document)."""
    if prefix.startswith("/api/v1"):
        return API_ERRORS
    if prefix.startswith("/app"):
        return WIRE_ERRORS
    return {}
