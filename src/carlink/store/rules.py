"""The order and contract state machines: every allowed transition in one place (STYLE: explicit states)."""

from __future__ import annotations

from enum import StrEnum

from carlink.errors import Conflict


class OrderState(StrEnum):
    PLACED = "placed"  # recorded with its lines; the charge has not settled yet
    REQUIRES_ACTION = "requires_action"  # the card issuer asks the buyer to confirm (3-D Secure)
    CONFIRMED = "confirmed"  # paid (or free) and its contracts concluded (STO-7)
    FAILED = "failed"  # declined or abandoned: nothing charged
    REFUNDED = "refunded"  # charged but could not be concluded: the money went back


class ContractState(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"  # will not renew; usable to the end of the paid period (STO-11)
    WITHDRAWN = "withdrawn"  # statutory withdrawal, refunded (STO-10)
    EXPIRED = "expired"


ORDER_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PLACED: frozenset(
        {OrderState.REQUIRES_ACTION, OrderState.CONFIRMED, OrderState.FAILED, OrderState.REFUNDED}
    ),
    OrderState.REQUIRES_ACTION: frozenset({OrderState.CONFIRMED, OrderState.FAILED, OrderState.REFUNDED}),
    OrderState.CONFIRMED: frozenset(),
    # A charge that arrives after its order gave up (a slow card issuer, a crash) is paid back.
    OrderState.FAILED: frozenset({OrderState.REFUNDED}),
    OrderState.REFUNDED: frozenset(),
}

CONTRACT_TRANSITIONS: dict[ContractState, frozenset[ContractState]] = {
    ContractState.ACTIVE: frozenset(
        {ContractState.CANCELLED, ContractState.WITHDRAWN, ContractState.EXPIRED}
    ),
    ContractState.CANCELLED: frozenset({ContractState.WITHDRAWN, ContractState.EXPIRED}),
    ContractState.WITHDRAWN: frozenset(),
    ContractState.EXPIRED: frozenset(),
}

# Contracts in these states give the car its service.
ENTITLED = frozenset({ContractState.ACTIVE, ContractState.CANCELLED})


def order_may(current: str, target: OrderState) -> bool:
    return target in ORDER_TRANSITIONS[OrderState(current)]


def contract_may(current: str, target: ContractState) -> bool:
    return target in CONTRACT_TRANSITIONS[ContractState(current)]


def require_contract_move(current: str, target: ContractState) -> None:
    if not contract_may(current, target):
        raise Conflict(
            "A %(current)s contract cannot become %(target)s.",
            code="contract_state",
            current=current,
            target=target.value,
        )
