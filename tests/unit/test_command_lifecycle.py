"""The command lifecycle (RMT-1): accepted -> delivered -> performed | error | expired; nothing else."""

from __future__ import annotations

import itertools

import pytest

from carlink.remote.rules import CommandState, can_move, is_terminal

S = CommandState
# Written out here, not read from carlink.remote.rules, so a change there has to change this table too.
ALLOWED = {
    (S.ACCEPTED, S.DELIVERED),
    (S.ACCEPTED, S.PERFORMED),  # the car's 'delivered' and 'performed' acks may cross on the wire
    (S.ACCEPTED, S.ERROR),
    (S.ACCEPTED, S.EXPIRED),
    (S.DELIVERED, S.PERFORMED),
    (S.DELIVERED, S.ERROR),
    (S.DELIVERED, S.EXPIRED),
}
FORBIDDEN = set(itertools.product(S, S)) - ALLOWED


def _id(pair: tuple[CommandState, CommandState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


@pytest.mark.parametrize("move", sorted(ALLOWED), ids=_id)
def test_a_command_may_move_along_its_lifecycle(move: tuple[CommandState, CommandState]) -> None:
    current, target = move
    assert can_move(current, target)
    assert can_move(current.value, target.value)


@pytest.mark.parametrize("move", sorted(FORBIDDEN), ids=_id)
def test_a_command_never_moves_backwards_sideways_or_out_of_a_final_state(
    move: tuple[CommandState, CommandState],
) -> None:
    current, target = move
    assert not can_move(current, target)


def test_every_pair_of_states_is_either_allowed_or_forbidden() -> None:
    assert len(ALLOWED) + len(FORBIDDEN) == len(S) ** 2 == 25


@pytest.mark.parametrize("state", list(S), ids=str)
def test_performed_error_and_expired_are_final_states(state: CommandState) -> None:
    assert is_terminal(state) == (state in {S.PERFORMED, S.ERROR, S.EXPIRED})


def test_an_unknown_state_is_a_programming_error_not_a_silent_move() -> None:
    with pytest.raises(ValueError):
        can_move("accepted", "cancelled")
    with pytest.raises(ValueError):
        is_terminal("lost")
