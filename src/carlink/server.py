"""Runs the ASGI app with uvicorn; Ctrl-C or SIGTERM stop it cleanly with exit code 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn


class QuietExitServer(uvicorn.Server):
    """uvicorn re-raises the stop signal once it has shut down; carlink's commands end with a plain 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def server(app: Any, *, host: str, port: int, **options: Any) -> QuietExitServer:
    return QuietExitServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", **options)
    )
