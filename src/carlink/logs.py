"""Log set-up: plain lines for people, one JSON object per line for log pipelines (CARLINK_LOG_JSON)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from urllib.parse import parse_qsl, urlencode

# Libraries whose debug output is for their own developers (and SQLAlchemy's echoes every parameter).
NOISY = ("amqtt", "transitions", "aiosqlite", "asyncio", "uvicorn.access", "sqlalchemy")
# Query parameters and path segments that carry a secret: OAuth codes and login states, tokens of every
# kind, and the invitation links' tokens (/register/{token}, /api/v1/invitations/{token}).
SECRET_PARAMETERS = frozenset(
    {
        "access_token",
        "captcha_token",
        "code",
        "code_verifier",
        "csrf_token",
        "id_token",
        "login_token",
        "password",
        "pin",
        "refresh_token",
        "state",
        "token",
    }
)
SECRET_PATHS = re.compile(r"(/register/|/invitations/)(?!resend\b)[^/?#\s]+")
REDACTED = "[redacted]"


def redact_target(target: str) -> str:
    """A request's path and query as the access log may show it: secrets replaced, the rest kept."""
    path, mark, query = target.partition("?")
    path = SECRET_PATHS.sub(rf"\g<1>{REDACTED}", path)
    if not mark:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(name, REDACTED if name.lower() in SECRET_PARAMETERS else value) for name, value in pairs]
    return f"{path}?{urlencode(kept, safe='/[]')}"


class AccessLogRedaction(logging.Filter):
    """On uvicorn's access log, whose records carry (client, method, path with query, version, status):
    the path is redacted before any handler formats it (docs/security/web.md)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Installs the redaction on uvicorn's access logger once per process, whatever its level."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, *, as_json: bool) -> None:
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
