"""Ports for what the suite restarts on the same port (the broker, the service's listening socket)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000  # preferred floor, clear of the usual service ports
PRIVILEGED_END = 1024  # ports below this need root to bind
MIN_CHOICE = 1000  # fewer candidates than this and collisions between workers get likely


def quiet_port() -> int:
    """A free port below the ephemeral range: no outgoing connection of any process on the machine takes
    it while something restarts on it (a port picked by binding port 0 comes from that range)."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # Above the well-known and most registered service ports when the ephemeral range leaves room for it
    # (Linux's default starts at 32768); else anything above the privileged ports.
    low = LOWEST if ephemeral_low > LOWEST + MIN_CHOICE else PRIVILEGED_END
    if ephemeral_low <= low + MIN_CHOICE:
        raise RuntimeError(
            f"the ephemeral port range starts at {ephemeral_low}: no room below it for a quiet port "
            "(raise the first number of /proc/sys/net/ipv4/ip_local_port_range)"
        )
    for _ in range(100):
        port = random.randrange(low, ephemeral_low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")
