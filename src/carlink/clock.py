"""The one source of 'now'. Tests move it forward instead of sleeping; nothing else is faked."""

from __future__ import annotations

import datetime as dt


class Clock:
    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += dt.timedelta(**delta)

    def reset(self) -> None:
        self.offset = dt.timedelta()


clock = Clock()
