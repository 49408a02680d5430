"""Errors a person or a client can act on: a stable code, an HTTP status and a clear message."""

from __future__ import annotations


class CarlinkError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers: dict[str, str] = {}


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

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)
        self.headers["Retry-After"] = str(self.retry_after)


class Locked(CarlinkError):
    status = 423
    code = "locked"


def vehicle_not_found(vin: str) -> NotFound:
    # The same answer for an unknown VIN and for someone else's: strangers learn nothing.
    return NotFound(f"no vehicle {vin} in your garage", code="vehicle_not_found")
