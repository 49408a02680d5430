"""/app/connect/v1: the wire contract of reference/porsche-connect-wire-api.md, on carlink's services."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from carlink.errors import CarlinkError

router = APIRouter(prefix="/app/connect/v1", tags=["compatibility"])


def compat_error(error: CarlinkError) -> JSONResponse:
    return JSONResponse({"error": error.code, "message": error.message}, status_code=error.status, headers=error.headers)
