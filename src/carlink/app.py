"""Builds the ASGI app from the domains' routers, and starts the roles' background work."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from carlink import __version__, error_responses, i18n
from carlink.catalog.seed import ensure_catalogue
from carlink.compat import api as compat_api
from carlink.connectivity import api as connectivity_api
from carlink.connectivity import pages as connectivity_pages
from carlink.db.base import Database
from carlink.db.migrate import upgrade
from carlink.errors import CarlinkError
from carlink.fod import api as packages_api
from carlink.fod import console as fod_console
from carlink.fod import functions
from carlink.fod import operator_api as fod_operator_api
from carlink.fod import owner_api as fod_owner_api
from carlink.fod import pages as fod_pages
from carlink.fod.service import ensure_keys
from carlink.garage import api as garage_api
from carlink.gateway.link import CloudLink
from carlink.gateway.service import UplinkHandler
from carlink.help import api as help_api
from carlink.help import pages as help_pages
from carlink.help.service import ensure_help_articles
from carlink.i18n import N_, _
from carlink.identity import api as identity_api
from carlink.identity import oidc
from carlink.identity import registration as identity_registration
from carlink.identity.access import cookie_caller
from carlink.identity.tokens import TokenIssuer
from carlink.incar import api as incar_api
from carlink.incar import pages as incar_pages
from carlink.jobs.scheduler import run_forever
from carlink.logs import redact_access_log, redact_target
from carlink.notify import api as notify_api
from carlink.notify import pages as notify_pages
from carlink.partners import api as partners_api
from carlink.partners import console as dealer_console
from carlink.partners import pages as partners_pages
from carlink.partners.seed import ensure_countries
from carlink.platform import ROLES, Platform
from carlink.privacy import api as privacy_api
from carlink.privacy import pages as privacy_pages
from carlink.privacy.seed import ensure_policy
from carlink.protocol.topics import Topics
from carlink.remote import api as remote_api
from carlink.security import api as security_api
from carlink.security import config as security_config
from carlink.security import console as soc_console
from carlink.security import pages as security_pages
from carlink.settings import Settings
from carlink.store import api as store_api
from carlink.store import entitlements
from carlink.store import pages as store_pages
from carlink.store import services_pages as store_services_pages
from carlink.store.payments import SandboxGateway
from carlink.web import pages
from carlink.web.headers import CONTENT_SECURITY_POLICY, content_security_policy, script_hash

log = logging.getLogger("carlink")
MAX_BODY_BYTES = 1024 * 1024
DATABASE_RETRY_SECONDS = 5  # Retry-After while the database is unreachable (a restart takes seconds)


async def start_platform(platform: Platform, *, migrate: bool = True) -> list[asyncio.Task[None]]:
    settings = platform.settings
    if migrate:
        await upgrade(settings.database_url)
    platform.issuer = TokenIssuer(settings)
    if platform.gateway is None:
        platform.gateway = SandboxGateway(platform.db)
    async with platform.db.transaction() as session:
        await platform.tokens.load(session)
        await platform.signer.load(session)
    # Several instances may start at once; the one that loses the race finds the catalogue seeded.
    for attempt in range(2):
        try:
            async with platform.db.transaction() as session:
                await ensure_catalogue(session)
                await ensure_countries(session)
                await ensure_keys(session)  # signed data packages (issue 6)
                await functions.ensure_function_packages(session, settings)
                await ensure_policy(session)
                await ensure_help_articles(session)  # the help centre's articles (HLP-1)
            break
        except IntegrityError:
            if attempt:
                raise
    # Every role talks to the broker: the api publishes commands, the gateway reads uplinks, jobs re-send.
    handler = None
    if "gateway" in platform.roles:
        handler = UplinkHandler(
            platform.db,
            platform.emit,
            _reply(platform),
            Topics(settings.mqtt_topic_prefix),
            republish_entitlements=functools.partial(entitlements.publish, platform),
            settings=settings,
            after_delivery=functools.partial(functions.after_report, platform),
            republish_security=functools.partial(security_config.publish, platform),
        )
    # An api instance without the gateway role learns of vehicle events through the broker.
    sink = platform.hub.publish if platform.roles & {"api", "gateway"} == {"api"} else None
    platform.link = CloudLink(
        settings, handler=handler, event_sink=sink, name="-".join(sorted(platform.roles))
    )
    await platform.link.start()
    tasks: list[asyncio.Task[None]] = []
    if "jobs" in platform.roles:
        tasks.append(asyncio.create_task(run_forever(platform), name="jobs"))
    return tasks


def _reply(platform: Platform) -> Callable[[str, bytes], Awaitable[bool]]:
    async def reply(topic: str, payload: bytes) -> bool:
        assert platform.link is not None
        return await platform.link.publish(topic, payload)

    return reply


async def stop_platform(platform: Platform, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if platform.link is not None:
        await platform.link.stop()
    await platform.db.dispose()


def create_app(
    settings: Settings,
    *,
    roles: frozenset[str] = ROLES,
    migrate: bool = True,
    platform: Platform | None = None,
) -> FastAPI:
    platform = platform or Platform(settings=settings, db=Database(settings.database_url), roles=roles)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = await start_platform(platform, migrate=migrate)
        try:
            yield
        finally:
            await stop_platform(platform, tasks)

    app = FastAPI(
        title="carlink API",
        version=__version__,
        description=(
            "Our own API (/api/v1) and the compatibility facade of the maker's app API (/app/connect/v1)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = platform
    redact_access_log()  # no OAuth code, login state or invitation token in the access log
    for router in (
        identity_api.router,
        oidc.router,
        garage_api.router,
        garage_api.catalogue_router,
        remote_api.router,
        store_api.router,
        store_api.vehicle_router,
        compat_api.router,
        pages.router,
        store_pages.router,
        store_services_pages.router,
        identity_registration.router,
        dealer_console.router,
        partners_api.router,
        partners_pages.router,
        privacy_api.router,
        privacy_pages.router,
        notify_api.router,
        notify_pages.router,
        incar_api.router,
        incar_pages.router,
        packages_api.router,
        fod_owner_api.router,
        fod_operator_api.router,
        fod_pages.router,
        fod_console.router,
        security_api.router,
        security_pages.router,
        soc_console.router,
        help_api.router,
        help_pages.router,
        connectivity_api.router,
        connectivity_pages.router,
    ):
        # The refusals every API route may answer, in the document with our error body (issue 9).
        app.include_router(router, responses=error_responses.for_prefix(router.prefix))
    # The API docs work offline too: Swagger UI comes from a Python package, not a CDN.
    # Swagger UI 5 (fastapi-swagger's copy of swagger-ui-dist) reads OpenAPI 3.1, which FastAPI writes.
    swagger = Path(str(importlib.resources.files("fastapi_swagger.resources")))
    app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="carlink API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )
        page.headers["Content-Security-Policy"] = _swagger_policy(bytes(page.body).decode())
        return page

    _install_handlers(app)
    _install_middleware(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        checks = {"database": False, "broker": platform.link is not None and platform.link.connected.is_set()}
        with contextlib.suppress(Exception):
            async with platform.db.session() as session:
                await session.execute(text("SELECT 1"))
                checks["database"] = True
        return JSONResponse(
            {"ready": all(checks.values()), **checks}, status_code=200 if all(checks.values()) else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _swagger_policy(html: str) -> str:
    """Swagger UI (vendored, not ours) starts from one inline script, allowed by its hash, and styles its
    React elements inline; the rest of the portal's policy stands."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return content_security_policy(
        script_src=" ".join(script_hash(script) for script in scripts), style_src="'unsafe-inline'"
    )


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
HTTP_MESSAGES = {
    "not_found": N_("there is no such page"),
    "method_not_allowed": N_("this address does not take that kind of request"),
    "payload_too_large": N_("the request is too large"),
}


HTTP_FALLBACK = N_("the request could not be handled")
# An error page must not wait long for the database to find out who is asking.
CALLER_LOOKUP_SECONDS = 0.5


async def _remember_caller(app: FastAPI, request: Request) -> None:
    """No route ran (an unknown address, a 405): the signed-in person still gets the error page in their
    profile's language, with the menu. A broken cookie or a slow database gives the plain page."""
    try:
        async with asyncio.timeout(CALLER_LOOKUP_SECONDS), app.state.platform.db.session() as session:
            request.state.caller = await cookie_caller(request, session)
    except Exception as exc:  # the page is shown anyway: this only decides its menu and language
        log.warning("error page without the caller (%s: %s)", type(exc).__name__, exc)


def error_body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(("/api/", "/app/", "/oauth/")) and "text/html" in request.headers.get(
        "accept", ""
    )


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(CarlinkError)
    async def carlink_error(request: Request, error: CarlinkError) -> Response:
        if request.url.path.startswith("/app/"):
            return compat_api.compat_error(error)
        if _wants_html(request):
            return pages.error_page(request, error)
        return JSONResponse(
            error_body(error.code, error.message), status_code=error.status, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return JSONResponse(
                error_body("invalid_json", _("the request body is not valid JSON")), status_code=400
            )
        details = [
            {"field": ".".join(str(part) for part in p.get("loc", ())[1:]), "problem": p.get("msg", "")}
            for p in problems
        ]
        body = error_body("invalid_request", _("the request does not have the expected fields"))
        body["error"]["details"] = details  # type: ignore[index]
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(error.status_code, "http_error")
        if request.url.path.startswith("/app/"):
            return compat_api.compat_error(
                CarlinkError(str(error.detail), code=code, status=error.status_code)  # untranslated: wire
            )
        # Starlette's own `detail` is English: a status we have no text for gets a general one.
        refusal = CarlinkError(HTTP_MESSAGES.get(code, HTTP_FALLBACK), code=code, status=error.status_code)
        refusal.headers.update(error.headers or {})  # a 405 keeps its Allow header
        if _wants_html(request):
            if not hasattr(request.state, "caller"):
                await _remember_caller(app, request)
            return pages.error_page(request, refusal)
        return JSONResponse(
            error_body(code, refusal.message), status_code=error.status_code, headers=refusal.headers
        )

    @app.exception_handler(DBAPIError)
    async def database_refused(request: Request, error: DBAPIError) -> Response:
        if _database_unreachable(error):
            return await unreachable(request, error)
        if not _is_data_exception(error):
            return await unexpected(request, error)
        # Text the database cannot keep (a NUL character, which PostgreSQL refuses, say) is the caller's
        # input, not our failure; the unit of work was rolled back, so nothing of it was written.
        log.info("refused input the database cannot store on %s %s", request.method, _logged_path(request))
        refusal = CarlinkError(N_("the request holds characters that cannot be stored"), code="invalid_input")
        if _wants_html(request):
            return pages.error_page(request, refusal)
        return JSONResponse(error_body(refusal.code, refusal.message), status_code=400)

    @app.exception_handler(ConnectionError)
    async def unreachable(request: Request, error: Exception) -> Response:
        """A database restart is seconds of outage, not a fault of the request: the client is told to try
        again, and the jobs role finishes what the request left half-way (issue 9, docs/faults.md)."""
        if not _database_unreachable(error):
            return await unexpected(request, error)
        log.warning("database unreachable on %s %s: %r", request.method, _logged_path(request), error)
        outage = CarlinkError(
            N_("the service is briefly unavailable; please try again in a moment"),
            code="service_unavailable",
            status=503,
        )
        outage.headers["Retry-After"] = str(DATABASE_RETRY_SECONDS)
        return await carlink_error(request, outage)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, _logged_path(request))
        failure = CarlinkError(N_("something went wrong on our side"), code="internal_error", status=500)
        response: Response = JSONResponse(error_body(failure.code, failure.message), status_code=500)
        if _wants_html(request):
            with contextlib.suppress(Exception):  # the page itself must not be the next failure
                response = pages.error_page(request, failure)
        # Starlette answers from outside EdgeGuard here, so the security headers are added on the spot.
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name.decode(), value.decode())
        return response


def _logged_path(request: Request) -> str:
    """The path as a log may show it: an invitation's token in /register/{token} is a secret."""
    return redact_target(request.url.path)


def _database_unreachable(error: Exception) -> bool:
    """The database cannot be reached or is restarting: a refused or cut connection, a connection the pool
    found dead, or SQLSTATE class 08 (connection exception) and 57P (shutdown, starting up)."""
    if isinstance(error, ConnectionError):  # refused or reset while the pool connects
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str) and state.startswith(("08", "57P")):
            return True
        if type(candidate).__name__ == "ConnectionDoesNotExistError":
            return True  # asyncpg: the server closed the connection under a query
    return False


def _is_data_exception(error: DBAPIError) -> bool:
    """SQLSTATE class 22 (data exception: invalid characters, values out of range) or SQLAlchemy's
    DataError: bad input rather than a fault of ours."""
    if error.__class__.__name__ == "DataError":
        return True
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str) and state.startswith("22"):
            return True
    return False


def _install_middleware(app: FastAPI) -> None:
    app.add_middleware(EdgeGuard)


# Every answer: no MIME sniffing, no full URLs to other sites, no framing; a page that needs a wider
# Content-Security-Policy sets its own header, which is then kept (docs/security/web.md).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]


class EdgeGuard:
    """Pure ASGI (cheaper than a BaseHTTPMiddleware on every request): caps request bodies (declared or
    streamed), adds the security headers, sets the request's language from the browser's, and treats
    repeated slashes as one, since older community clients send /app//connect/... (reference doc §1)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if "//" in path:
            path = re.sub("/{2,}", "/", path)
            scope = dict(scope, path=path, raw_path=path.encode())
        headers = dict(scope.get("headers") or [])
        # The browser's language until a signed-in person's profile says otherwise (identity.access).
        i18n.use(i18n.negotiate(headers.get(b"accept-language", b"").decode("latin-1")))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _too_large(send)
            return
        received = 0
        too_large = started = False

        async def limited_receive() -> Any:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Any) -> None:
            # FastAPI turns any error while reading a body into its own 400; past the cap, ours answers.
            nonlocal started
            if too_large:
                return
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [header for header in SECURITY_HEADERS if header[0] not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if too_large and not started:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any) -> None:
    body = json.dumps(
        error_body(
            "payload_too_large",
            _("request bodies are limited to %(limit)s bytes", limit=MAX_BODY_BYTES),
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
