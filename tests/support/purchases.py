"""What buying takes in a test: a billing address, a card the sandbox payment gateway charges, and a dealer's
sale that invites its buyer by mail (the invitation link's token read from the outbox)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from carlink.demo import world
from carlink.identity.invitations import SaleInput, record_sale
from carlink.identity.models import Account
from carlink.notify.models import OutboxEmail
from carlink.partners.models import Partner, Sale
from tests.support.stack import Stack

ADDRESS = {
    "name": "Alex Example",
    "street": "Beispielweg 1",
    "postcode": "70173",
    "city": "Stuttgart",
    "country": "DE",
}
# The sandbox gateway charges this card without a challenge (a body of POST /api/v1/store/payment-methods).
VISA = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
SOLD_VIN = "WP0ZZZY1ZPS777002"  # a Taycan not in the demo world: the dealer's sale creates it


@dataclass(frozen=True)
class Invitation:
    """A sale recorded by the demo world's first dealer, and the token of the link mailed to the buyer."""

    sale_id: int
    token: str


async def dealer_sale(stack: Stack, buyer_email: str, buyer_name: str = "Alex Buyer") -> Invitation:
    """The car's dealer sells SOLD_VIN to a buyer without an account, which mails an invitation (ACC-2)."""
    async with stack.db.transaction() as session:
        partner = await session.scalar(select(Partner).where(Partner.code == world.DEMO_PARTNERS[0].code))
        dealer = await session.scalar(select(Account).where(Account.email == world.DEALER))
        assert partner is not None and dealer is not None
        entered = SaleInput(
            vin=SOLD_VIN,
            model_key="taycan-1",
            variant_code="Y1ADB1",
            model_year=2026,
            colour="Ice Grey",
            buyer_email=buyer_email,
            buyer_name=buyer_name,
            buyer_country="DE",
            language="en",
            delivery_date=None,
        )
        await record_sale(session, stack.settings, partner, dealer, entered)
        sale_id = await session.scalar(select(Sale.id).where(Sale.buyer_email == buyer_email))
        assert sale_id is not None
    async with stack.db.session() as session:
        mail = await session.scalar(
            select(OutboxEmail.body_text)
            .where(OutboxEmail.template == "invitation", OutboxEmail.to_address == buyer_email)
            .order_by(OutboxEmail.id.desc())
        )
    token = re.search(r"/register/([A-Za-z0-9_-]+)", mail or "")
    assert token is not None, f"the sale sent no invitation: {mail!r}"
    return Invitation(sale_id, token.group(1))
