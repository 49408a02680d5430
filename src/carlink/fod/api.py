"""/api/v1/packages: signed metadata and package files for cars (HTTP Basic with their broker account) and
operators (bearer token or portal session with the operator role). Files support HTTP range requests, so
a car that lost its connection resumes where it stopped (docs/protocol.md 'Signed data packages')."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import stat
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.errors import NotFound, Unauthorised
from carlink.fod import service
from carlink.gateway.credentials import GATEWAY_USER, check_password
from carlink.identity.access import bearer_caller, cookie_caller, platform_of
from carlink.identity.service import OPERATOR, require_staff

router = APIRouter(prefix="/api/v1/packages", tags=["packages"])
REALM = 'Basic realm="carlink packages", charset="UTF-8"'


class PackageFileResponse(FileResponse):
    """Package files are megabytes: 1 MiB reads halve the CPU per byte against Starlette's 64 KiB."""

    chunk_size = 1024 * 1024


class Signature(BaseModel):
    keyid: str
    sig: str = Field(description="Ed25519 over the canonical JSON of `signed`, hex")


class SignedEnvelope(BaseModel):
    """A metadata document as the car verifies it (docs/protocol.md 'Signed data packages')."""

    signed: dict[str, Any]
    signatures: list[Signature]


METADATA: dict[int | str, dict[str, Any]] = {200: {"model": SignedEnvelope}}
# Metadata changes with every signed version; a cache must ask again each time.
NO_CACHE = {"Cache-Control": "no-cache"}


def _unauthorised(message: str = "sign in with the car's VIN and broker password") -> Unauthorised:
    error = Unauthorised(message, code="unauthorised")
    error.headers["WWW-Authenticate"] = REALM
    return error


async def authorise(request: Request, session: AsyncSession) -> str:
    """The caller's name: a car's VIN (HTTP Basic, its MQTT credentials) or `operator:<account id>`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            username, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorised("the Basic credentials are not valid base64") from None
        secret = platform_of(request).settings.secret_key
        if (
            not sep
            or not username
            or username == GATEWAY_USER
            or not check_password(secret, username, password)
        ):
            raise _unauthorised("the VIN or password is not right")
        return username
    caller = await bearer_caller(request, session) or await cookie_caller(request, session)
    if caller is None:
        raise _unauthorised()
    await require_staff(session, caller.account, OPERATOR)
    return f"operator:{caller.account.id}"


@router.get("/metadata/root.json", responses=METADATA)
async def latest_root(request: Request) -> JSONResponse:
    async with platform_of(request).db.session() as session:
        await authorise(request, session)
        row = await service.current_root(session)
    return JSONResponse(row.envelope, headers=NO_CACHE)


@router.get("/metadata/{version}.root.json", responses=METADATA)
async def numbered_root(request: Request, version: int) -> JSONResponse:
    async with platform_of(request).db.session() as session:
        await authorise(request, session)
        row = await service.root_version(session, version)
    return JSONResponse(row.envelope)  # a signed version never changes


@router.get("/metadata/targets.json", responses=METADATA)
async def latest_targets(request: Request) -> JSONResponse:
    async with platform_of(request).db.session() as session:
        await authorise(request, session)
        row = await service.current_targets(session)
    return JSONResponse(row.envelope, headers=NO_CACHE)


# The operator chose the Content-Type when adding the package; octet-stream unless they said otherwise.
FILE_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}


@router.get(
    "/files/{name}",
    response_class=PackageFileResponse,
    responses={
        200: {"description": "the whole file", **FILE_BYTES},
        206: {"description": "the file from the requested offset, with Content-Range", **FILE_BYTES},
        416: {
            "description": "the range starts past the end (empty body; Content-Range names the size)",
            "content": {"text/plain": {}},
        },
    },
)
@router.head("/files/{name}", include_in_schema=False)
async def package_file(request: Request, name: str) -> PackageFileResponse:
    """The file's bytes; `Range: bytes=<from>-` resumes (206 with Content-Range, 416 past the end).
    ETag is the SHA-256, so `If-Range` restarts a download cleanly when the file was replaced."""
    async with platform_of(request).db.session() as session:
        await authorise(request, session)
        row = await service.package_file(session, name)
    try:
        found = await asyncio.to_thread(os.stat, row.stored_path)
    except OSError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise NotFound(
            "the file of package %(name)r is missing on the server", code="package_file_missing", name=name
        )
    return PackageFileResponse(
        row.stored_path,
        stat_result=found,
        media_type=row.content_type,
        headers={"ETag": f'"{row.sha256}"', "Cache-Control": "no-cache"},
    )
