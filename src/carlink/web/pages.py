"""The portal: server-rendered pages (Jinja2 + htmx)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from carlink.errors import CarlinkError
from carlink.web.templating import page

router = APIRouter(include_in_schema=False)


def error_page(request: Request, error: CarlinkError) -> HTMLResponse:
    return page(request, "message.html", status=error.status, title="Something is not right", message=error.message)
