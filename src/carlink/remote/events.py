"""In-process push of vehicle events (command state, new telemetry) to SSE streams and long polls.

Events made in another process (a gateway or jobs instance) arrive over the broker when this instance runs
the api role alone; long polls also re-read the database (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class EventHub:
    def __init__(self) -> None:
        self._listeners: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def publish(self, vehicle_id: int, event: dict[str, Any]) -> None:
        for queue in list(self._listeners.get(vehicle_id, ())):
            if queue.qsize() < 100:
                queue.put_nowait(event)

    @asynccontextmanager
    async def listen(self, vehicle_id: int) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners[vehicle_id].add(queue)
        try:
            yield queue
        finally:
            self._listeners[vehicle_id].discard(queue)
            if not self._listeners[vehicle_id]:
                self._listeners.pop(vehicle_id, None)
