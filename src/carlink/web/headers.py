"""The browser-facing security headers: one strict Content-Security-Policy for every page, and the few
pages that must widen it (docs/security/web.md).

The portal's templates carry no inline script, style or event handler, htmx runs without eval (its
indicator styles and eval are off in base.html's htmx-config), and every script, style and picture comes
from this site. So the policy allows 'self' and nothing else: an injected `<script>` or `style=` does not
run even if escaping ever failed somewhere.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def content_security_policy(**wider: str) -> str:
    """The policy, with sources added to some directives (`img_src="https://tiles.example"`)."""
    directives = dict(POLICY)
    for name, sources in wider.items():
        directive = name.replace("_", "-")
        directives[directive] = f"{directives[directive]} {sources}".strip()
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


CONTENT_SECURITY_POLICY = content_security_policy()


def redirect_source(uri: str) -> str:
    """The CSP source that lets a form's redirect reach `uri`: its origin, or its scheme for an app's own
    scheme (`carlink:` for carlink://callback). Browsers check form-action on every redirect of a post."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:" if parts.scheme else ""


def script_hash(script: str) -> str:
    """The CSP source allowing exactly this inline script (for vendored pages we cannot change)."""
    digest = hashlib.sha256(script.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"
