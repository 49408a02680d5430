"""The objects the authorisation matrix calls every route on: one of each kind, all belonging to the owner's
Taycan or its dealer (DE-STR-01), made through the real API and services of a running stack.

Each value fills a path parameter of the routes (docs/security/authorization.md, "Objects"). Objects that a
permitted call destroys (a secondary user removed, an appointment cancelled, an erasure completed) have their
own copy per route, so no row of the matrix spoils another.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
from sqlalchemy import select

from carlink.catalog.models import TermsVersion
from carlink.demo import world
from carlink.demo.world_updates import PACKAGE, ensure_demo_update
from carlink.fod.models import UpdateCampaign
from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.identity.models import Account
from carlink.notify.models import Notification
from carlink.partners import service as partners
from carlink.partners.models import Partner, RecallCampaign
from carlink.privacy import erasure
from carlink.protocol.messages import AlarmTrigger
from carlink.security import service as cards
from carlink.store.models import Order
from tests.integration.test_fod_api import offer_of
from tests.integration.test_soc_console import activate_package, raise_alarm
from tests.integration.test_store_contracts import buy, ready_cart
from tests.support.purchases import dealer_sale
from tests.support.stack import TAYCAN, Stack

# A VIN that passes every check of its form but belongs to no car: strangers must get the same answer for it
# as for the owner's Taycan.
UNKNOWN_VIN = "WP0ZZZY1ZPS999999"
# People who are only objects here (never callers): secondary users the owner removes, a person asking for
# erasure whom the dealer and operator then erase.
MEMBER_FOR_API = "matrix.member.api@example.com"
MEMBER_FOR_PAGE = "matrix.member.page@example.com"
ERASED_PERSON = "matrix.erasure@example.com"
BUYER = "matrix.buyer@example.com"
CART_SERVICE = "charging-planner"


async def build(stack: Stack) -> dict[str, str]:
    """Every object kind of the matrix, by the name the doc's routes use for it."""
    activation_id = await activate_package(stack, TAYCAN)  # buys remote services: an order and a contract
    owner = await stack.as_user(world.OWNER)
    try:
        values = await _owner_objects(stack, owner)
    finally:
        await owner.aclose()
    values["activation_id"] = str(activation_id)
    values["alarm_id"] = str(await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, dt.datetime.now(dt.UTC)))
    values.update(await _people(stack))
    values.update(await _dealer_objects(stack))
    values.update(await _operator_objects(stack))
    values.update(
        {
            "vin": TAYCAN,
            "unknown_vin": UNKNOWN_VIN,
            "document": "general",
            "country": "DE",
            "code": "DE",
            "model_key": "taycan-1",
            "version": "1",
            "slug": "buying-a-service",
            "name": PACKAGE,
            "view": "frontView",
        }
    )
    return values


async def _owner_objects(stack: Stack, owner: httpx.AsyncClient) -> dict[str, str]:
    """What the owner's own use of the car leaves behind: orders, a contract, a cart at its last step, a
    card, a command, a function order, two workshop appointments, a notification, the pictures' address."""
    # A monthly subscription (it renews, so cancelling and withdrawing both act), and another service
    # waiting in the cart at its last step.
    contract_id = (await buy(owner, TAYCAN, "navigation-plus", "P1M"))["id"]
    cart = await ready_cart(owner, TAYCAN, CART_SERVICE, "P1Y")
    methods = (await owner.get("/api/v1/store/payment-methods")).json()
    command = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "HONK_FLASH"})
    assert command.status_code == 202, command.text
    functions = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/functions")).json()
    function_order = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/functions/orders",
        json={
            "offer_id": offer_of(functions, "adaptive-cruise", "P1M"),
            "payment_method_id": methods[0]["id"],
            "accept_terms": True,
        },
    )
    assert function_order.status_code == 201, function_order.text
    slots = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/slots")).json()["slots"]
    appointments = []
    for slot in slots[:2]:
        booked = await owner.post(f"/api/v1/vehicles/{TAYCAN}/appointments", json={"slot_id": slot["id"]})
        assert booked.status_code == 201, booked.text
        appointments.append(str(booked.json()["appointment"]["id"]))
    pictures = (await owner.get(f"/app/connect/v1/vehicles/{TAYCAN}/pictures")).json()
    picture = re.search(r"/app/pictures/[^/]+/([^/]+)/", str(pictures))
    assert picture is not None, pictures
    async with stack.db.session() as session:
        owner_id = await session.scalar(select(Account.id).where(Account.email == world.OWNER))
        order_id = await session.scalar(select(Order.id).order_by(Order.id).limit(1))
        notification_id = await session.scalar(
            select(Notification.id).where(Notification.account_id == owner_id).limit(1)
        )
        terms_id = await session.scalar(select(TermsVersion.id).limit(1))
    assert notification_id is not None, "the purchase told the owner nothing"
    return {
        "owner_id": str(owner_id),
        "order_id": str(order_id),
        "contract_id": str(contract_id),
        "revision": str(cart["revision"]),
        "service_code": CART_SERVICE,
        "method_id": str(methods[0]["id"]),
        "command_id": str(command.json()["id"]),
        "function_order_id": str(function_order.json()["id"]),
        "appointment_id": appointments[0],
        "appointment_for_page": appointments[1],
        "notification_id": str(notification_id),
        "terms_id": str(terms_id),
        "picture_token": picture.group(1),
    }


async def _people(stack: Stack) -> dict[str, str]:
    """Two more secondary users of the Taycan (one per removal route), and a customer of the dealer who asks
    for erasure."""
    found: dict[str, str] = {}
    async with stack.db.transaction() as session:
        taycan = await garage.vehicle_by_vin(session, TAYCAN)
        dealer = await session.scalar(select(Partner).where(Partner.code == world.DEMO_PARTNERS[0].code))
        assert taycan is not None and dealer is not None
        for key, email in (("member_for_api", MEMBER_FOR_API), ("member_for_page", MEMBER_FOR_PAGE)):
            member = await _account(session, email)
            await garage.assign_user(session, taycan, member, garage.SECONDARY)
            found[key] = str(member.id)
        person = await _account(session, ERASED_PERSON)
        await partners.choose_partner(session, person.id, dealer.id)
        request = await erasure.request_after_deletion(session, person)
        found["request_id"] = str(request.id)
        found["partner_id"] = str(dealer.id)
    return found


async def _account(session: Any, email: str) -> Account:
    return await identity.create_account(session, email=email, password=world.PASSWORD, country="DE")


async def _dealer_objects(stack: Stack) -> dict[str, str]:
    """A sale by the car's dealer with its open invitation, and a driver card of the Taycan."""
    invitation = await dealer_sale(stack, BUYER, "Mat Rix")
    async with stack.db.transaction() as session:
        partner = await session.scalar(select(Partner).where(Partner.code == world.DEMO_PARTNERS[0].code))
        dealer = await session.scalar(select(Account).where(Account.email == world.DEALER))
        assert partner is not None and dealer is not None
        card = await cards.register_card(
            session, partner.id, vin=TAYCAN, serial="MATRIX01", label="", registered_by=dealer.id
        )
        card_id = card.id
    return {"sale_id": str(invitation.sale_id), "card_id": str(card_id), "token": invitation.token}


async def _operator_objects(stack: Stack) -> dict[str, str]:
    """The demo's software update campaign and an open recall campaign."""
    async with stack.db.transaction() as session:
        await ensure_demo_update(session, stack.settings, world.OPERATOR)
        campaign_id = await session.scalar(select(UpdateCampaign.id).limit(1))
        recall_id = await session.scalar(
            select(RecallCampaign.id).where(RecallCampaign.closed_at.is_(None)).limit(1)
        )
    assert campaign_id is not None and recall_id is not None
    return {"campaign_id": str(campaign_id), "recall_id": str(recall_id)}
