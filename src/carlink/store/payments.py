"""The payment-gateway interface the store charges through, and the sandbox that implements it.

The platform hands a card number to the gateway once and keeps only the token it gets back, with brand,
last 4 and expiry. Every charge and refund carries an idempotency key: the gateway books one charge per
key however often it is asked, which is what makes double clicks and retries safe.

The sandbox behaves like a card provider's test mode. It keeps its books in its own tables (`sandbox_*`)
and its own transactions, as an outside provider would, so a crash of ours never rolls back its charge.
Test cards (any future expiry, any CVC):

| number | brand | behaviour |
|---|---|---|
| 4242 4242 4242 4242 | VISA | paid |
| 4000 0000 0000 3220 | VISA | asks for a one-time code (3-D Secure); the sandbox's code is 123456 |
| 4000 0000 0000 0002 | VISA | declined |
| 4000 0000 0000 9995 | VISA | declined: insufficient funds |
| 5555 5555 5555 4444 | Mastercard | paid |
| 3530 1113 3330 0000 | JCB | paid |
| 3622 7206 2716 67 | Diners Club | paid |
| 3782 8224 6310 005 | American Express | paid (but no country of ours accepts the brand) |
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from carlink.catalog.countries import CardBrand
from carlink.clock import clock
from carlink.db.base import Base, Database, utcnow
from carlink.errors import CarlinkError, NotFound
from carlink.store.cards import card_error, check_expiry, clean_number, detect_brand

SANDBOX_CHALLENGE_CODE = "123456"


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int
    cvc: str
    holder: str = ""


@dataclass(frozen=True)
class CardToken:
    token: str
    brand: CardBrand
    last4: str
    exp_month: int
    exp_year: int


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    REQUIRES_ACTION = "requires_action"
    DECLINED = "declined"


@dataclass(frozen=True)
class ChargeResult:
    id: str
    status: ChargeStatus
    amount_minor: int
    currency: str
    decline_code: str | None = None


class PaymentGateway(Protocol):
    async def tokenise(self, card: CardInput) -> CardToken: ...

    async def charge(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> ChargeResult: ...

    async def answer_challenge(self, charge_id: str, answer: str) -> ChargeResult: ...

    async def find_charge(self, idempotency_key: str) -> ChargeResult | None: ...

    async def refund(self, *, charge_id: str, amount_minor: int, idempotency_key: str) -> str: ...


class SandboxCard(Base):
    __tablename__ = "sandbox_cards"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    brand: Mapped[str] = mapped_column(String(16))
    last4: Mapped[str] = mapped_column(String(4))
    # What this test card does when charged: paid | challenge | card_declined | insufficient_funds
    behaviour: Mapped[str] = mapped_column(String(24))


class SandboxCharge(Base):
    __tablename__ = "sandbox_charges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    token: Mapped[str] = mapped_column(ForeignKey("sandbox_cards.token"))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    decline_code: Mapped[str | None] = mapped_column(String(40), default=None)
    refunded_minor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SandboxRefund(Base):
    __tablename__ = "sandbox_refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("sandbox_charges.id"), index=True)
    amount_minor: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


_BEHAVIOUR = {
    "4000000000003220": "challenge",
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}


def _result(row: SandboxCharge) -> ChargeResult:
    return ChargeResult(
        id=row.id,
        status=ChargeStatus(row.status),
        amount_minor=row.amount_minor,
        currency=row.currency,
        decline_code=row.decline_code,
    )


class SandboxGateway:
    """A test-mode card provider with durable books, shared by every instance on the same database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def tokenise(self, card: CardInput) -> CardToken:
        number = clean_number(card.number)
        check_expiry(card.exp_month, card.exp_year, clock.now().date())
        if not (card.cvc.isdigit() and len(card.cvc) in (3, 4)):
            raise card_error("The security code has 3 or 4 digits.", "card_cvc_invalid")
        brand = detect_brand(number)
        if brand is None:
            raise card_error("We do not know this card's brand.", "card_brand_unknown")
        token = f"tok_{secrets.token_hex(12)}"
        async with self.db.transaction() as session:
            session.add(
                SandboxCard(
                    token=token,
                    brand=brand.value,
                    last4=number[-4:],
                    behaviour=_BEHAVIOUR.get(number, "paid"),
                )
            )
        return CardToken(token, brand, number[-4:], card.exp_month, card.exp_year)

    async def charge(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        if amount_minor <= 0:
            raise ValueError("a charge is for a positive amount")
        existing = await self.find_charge(idempotency_key)
        if existing is not None:
            return existing
        try:
            async with self.db.transaction() as session:
                card = await session.get(SandboxCard, token)
                if card is None:
                    raise NotFound("The payment gateway does not know this card.", code="card_unknown")
                status, decline = {
                    "paid": (ChargeStatus.SUCCEEDED, None),
                    "challenge": (ChargeStatus.REQUIRES_ACTION, None),
                }.get(card.behaviour, (ChargeStatus.DECLINED, card.behaviour))
                row = SandboxCharge(
                    id=f"ch_{secrets.token_hex(12)}",
                    idempotency_key=idempotency_key,
                    token=token,
                    amount_minor=amount_minor,
                    currency=currency,
                    status=status.value,
                    decline_code=decline,
                )
                session.add(row)
                await session.flush()
                return _result(row)
        except IntegrityError:  # the same key charged at the same moment elsewhere: that charge stands
            again = await self.find_charge(idempotency_key)
            assert again is not None
            return again

    async def answer_challenge(self, charge_id: str, answer: str) -> ChargeResult:
        async with self.db.transaction() as session:
            row = await session.get(SandboxCharge, charge_id, with_for_update=True)
            if row is None:
                raise NotFound("The payment gateway does not know this payment.", code="charge_unknown")
            if row.status == ChargeStatus.REQUIRES_ACTION:
                if answer.strip() == SANDBOX_CHALLENGE_CODE:
                    row.status = ChargeStatus.SUCCEEDED.value
                else:
                    row.status, row.decline_code = ChargeStatus.DECLINED.value, "authentication_failed"
            return _result(row)

    async def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(SandboxCharge).where(SandboxCharge.idempotency_key == idempotency_key)
            )
            return _result(row) if row else None

    async def refund(self, *, charge_id: str, amount_minor: int, idempotency_key: str) -> str:
        try:
            async with self.db.transaction() as session:
                done = await session.scalar(
                    select(SandboxRefund).where(SandboxRefund.idempotency_key == idempotency_key)
                )
                if done is not None:
                    return done.id
                charge = await session.get(SandboxCharge, charge_id, with_for_update=True)
                if charge is None or charge.status != ChargeStatus.SUCCEEDED:
                    raise NotFound("There is no paid charge to refund.", code="charge_unknown")
                if charge.refunded_minor + amount_minor > charge.amount_minor:
                    raise CarlinkError(
                        "A refund cannot exceed the charge.", code="refund_too_large", status=409
                    )
                charge.refunded_minor += amount_minor
                refund = SandboxRefund(
                    id=f"re_{secrets.token_hex(12)}",
                    idempotency_key=idempotency_key,
                    charge_id=charge_id,
                    amount_minor=amount_minor,
                )
                session.add(refund)
                return refund.id
        except IntegrityError:
            async with self.db.session() as session:
                again = await session.scalar(
                    select(SandboxRefund).where(SandboxRefund.idempotency_key == idempotency_key)
                )
                assert again is not None
                return again.id
