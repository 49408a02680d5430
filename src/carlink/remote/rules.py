"""The command lifecycle (RMT-1): accepted -> delivered -> performed | error | expired."""

from __future__ import annotations

from enum import StrEnum


class CommandState(StrEnum):
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    PERFORMED = "performed"
    ERROR = "error"
    EXPIRED = "expired"


TERMINAL = frozenset({CommandState.PERFORMED, CommandState.ERROR, CommandState.EXPIRED})

ALLOWED: dict[CommandState, frozenset[CommandState]] = {
    # A car may report the outcome without a separate 'delivered' (both acks can cross on the wire).
    CommandState.ACCEPTED: frozenset(
        {CommandState.DELIVERED, CommandState.PERFORMED, CommandState.ERROR, CommandState.EXPIRED}
    ),
    CommandState.DELIVERED: frozenset({CommandState.PERFORMED, CommandState.ERROR, CommandState.EXPIRED}),
    CommandState.PERFORMED: frozenset(),
    CommandState.ERROR: frozenset(),
    CommandState.EXPIRED: frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return CommandState(target) in ALLOWED[CommandState(current)]


def is_terminal(state: str) -> bool:
    return CommandState(state) in TERMINAL
