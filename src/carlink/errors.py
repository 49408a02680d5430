"""Errors a person or a client can act on: a stable code, an HTTP status and a clear message.

The message is written in English with ``%(name)s`` placeholders and the values given as keywords
(``NotFound("no vehicle %(vin)s in your garage", code="vehicle_not_found", vin=vin)``); `message` reads it
in the language of the current request (carlink.i18n), `str()` in English for the logs. Never build the
message with an f-string: the catalogue could not hold it (tests/unit/test_catalogues.py checks).
"""

from __future__ import annotations

from typing import Any

from carlink import i18n


class CarlinkError(Exception):
    status = 400
    code = "bad_request"
    # Which positional argument is the message (for the catalogue's extraction, tools/catalogs.py).
    message_position = 1

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, **values: Any
    ) -> None:
        super().__init__(message % values if values else message)
        self.template = message
        self.values = values
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers: dict[str, str] = {}

    @property
    def message(self) -> str:
        """The message in the current request's language."""
        return i18n._(self.template, **self.values)


class NotFound(CarlinkError):
    status = 404
    code = "not_found"


class Unauthorised(CarlinkError):
    status = 401
    code = "unauthorised"


class Forbidden(CarlinkError):
    status = 403
    code = "forbidden"


class Conflict(CarlinkError):
    status = 409
    code = "conflict"


class TooManyRequests(CarlinkError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, **values: Any) -> None:
        super().__init__(message, code=code, **values)
        self.retry_after = max(1, retry_after)
        self.headers["Retry-After"] = str(self.retry_after)


class Locked(CarlinkError):
    status = 423
    code = "locked"


def vehicle_not_found(vin: str) -> NotFound:
    # The same answer for an unknown VIN and for someone else's: strangers learn nothing.
    return NotFound("no vehicle %(vin)s in your garage", code="vehicle_not_found", vin=vin)
