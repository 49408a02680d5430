"""What the test tells the service process, and what it hears back, through files in one folder.

A subprocess that may be killed with SIGKILL at any moment needs a channel that survives it and needs no
connection: plain files, written atomically (write, then rename). Two things travel this way:

- the clock: `clock` holds the offset in seconds that the service adds to the real time
  (`carlink.clock.clock.offset`), so the test can let claims and stale-order timers run out without waiting;
- the payment hold: `hold-charge` names an idempotency-key prefix; the first charge whose key starts with it
  is booked at the provider and then held — `charge-held` says which key — until `release-charge` appears.
  That is "in the middle of a checkout (or renewal)" exactly: the provider has the money, carlink has not
  recorded it yet.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK = "clock"
HOLD_CHARGE = "hold-charge"
CHARGE_HELD = "charge-held"
RELEASE_CHARGE = "release-charge"


def write(folder: Path, name: str, text: str) -> None:
    """Atomic: a reader sees the old content or the new one, never half of it."""
    temporary = folder / f".{name}.{os.getpid()}"
    temporary.write_text(text)
    temporary.replace(folder / name)


def read(folder: Path, name: str) -> str | None:
    with contextlib.suppress(FileNotFoundError):
        return (folder / name).read_text()
    return None


def clock_offset(folder: Path) -> float:
    text = read(folder, CLOCK)
    return float(text) if text else 0.0
