"""Export and erasure of a person's data (PRV-5, ACC-5): the ZIP holds everything about the person and no
secret; an erasure request is refused while the person is still the main user of a car with running
contracts, and completing it (by an operator, or by the person's own dealer) really removes or anonymises the
data, keeps an audit trail without personal data, mails the old address and frees it for a new ID."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

from sqlalchemy import func, select

from carlink.demo import world
from carlink.garage.models import VehicleUser
from carlink.identity import service as identity
from carlink.identity.models import Account, InvitationRequest, RefreshToken, WebSession
from carlink.notify.models import Notification, OutboxEmail
from carlink.notify.service import notify
from carlink.partners import service as partners
from carlink.partners.models import PreferredPartner
from carlink.privacy.models import ConsentEvent, ErasureRequest, PrivacyAuditEntry
from carlink.store.models import BillingAddress, Order, PaymentMethod
from tests.integration.test_store_checkout import ready_cart
from tests.support.portal import Browser, account_id, partner_id
from tests.support.stack import TAYCAN, Stack


async def test_export_holds_the_persons_data_and_no_secrets(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    cart = await ready_cart(owner, TAYCAN, "remote-services", "P1Y")
    order = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": cart["revision"]})
    assert order.status_code == 201, order.text
    # REQ: PRV-5 — the JSON API download.
    response = await owner.get("/api/v1/me/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="carlink-data-20')
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["data.json", "summary.html"]
    raw = archive.read("data.json").decode()
    data = json.loads(raw)
    assert data["identity"]["id"]["email"] == world.OWNER
    vins = {car["vin"]: car for car in data["garage"]["vehicles"]}
    assert vins[TAYCAN]["role"] == "main" and vins[TAYCAN]["pairing_code"]
    assert [o["number"] for o in data["store"]["orders"]] == [order.json()["number"]]
    assert data["store"]["orders"][0]["card"] == {
        "brand": "VISA",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    assert data["store"]["billing_address"]["city"] == "Stuttgart"
    assert data["notify"]["emails"][0]["template"] == "order_confirmation"
    assert {"partners", "incar", "privacy"} <= set(data)
    async with stack.db.session() as session:
        account = await session.scalar(select(Account).where(Account.email == world.OWNER))
        tokens = list(await session.scalars(select(PaymentMethod.token)))
        refresh = list(await session.scalars(select(RefreshToken.token_hash)))
    assert account is not None and account.pin_hash
    for secret in [account.password_hash, account.pin_hash, *tokens, *refresh]:
        assert secret not in raw
    assert "$argon2" not in raw and "password" not in raw and "token" not in raw
    summary = archive.read("summary.html").decode()
    assert TAYCAN in summary and order.json()["number"] in summary and "ending 4242" in summary

    # The portal's download is the same archive; each export is audit-logged.
    browser = await Browser(stack).sign_in(world.OWNER)
    page = await browser.http.get("/privacy/export")
    assert page.status_code == 200 and "data.json" in zipfile.ZipFile(io.BytesIO(page.content)).namelist()
    async with stack.db.session() as session:
        exports = await session.scalar(
            select(func.count())
            .select_from(PrivacyAuditEntry)
            .where(PrivacyAuditEntry.action == "data.exported")
        )
    assert exports == 2

    # REQ: PRV-5, STO-9 — the main user of a car with a running contract hands it over first.
    refused = await owner.post("/api/v1/me/privacy/erasure", json={"password": world.PASSWORD})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "erasure_blocked_by_vehicle"
    form = await browser.post("/privacy/erasure", {"password": world.PASSWORD})
    assert form.status_code == 409 and 'data-code="erasure_blocked_by_vehicle"' in form.text
    assert f'href="/vehicles/{TAYCAN}/handover"' in form.text
    for client in (owner, browser.http):
        await client.aclose()


async def test_erasure_is_completed_by_operator_or_own_dealer_and_removes_the_data(stack: Stack) -> None:
    stranger_id = await account_id(stack, world.STRANGER)
    family_id = await account_id(stack, world.FAMILY)
    stuttgart = await partner_id(stack, "DE-STR-01")
    async with stack.db.transaction() as session:
        await partners.choose_partner(session, stranger_id, stuttgart)
        session.add(
            BillingAddress(
                account_id=stranger_id,
                name="Robin Stranger",
                street="Weg 2",
                postcode="70173",
                city="Stuttgart",
                country="DE",
            )
        )
        await notify(session, account_id=stranger_id, kind="test", title="Hello", dedupe_key="hello-stranger")
        session.add(
            OutboxEmail(
                dedupe_key="old-mail",
                account_id=None,
                to_address=world.STRANGER,
                language="en",
                template="order_confirmation",
                subject="Old",
                body_text="Old",
            )
        )
        session.add(
            ConsentEvent(account_id=stranger_id, partner_id=stuttgart, granted=True, channel="portal")
        )

    stranger = await Browser(stack).sign_in(world.STRANGER)
    wrong = await stranger.post("/privacy/erasure", {"password": "not-my-password"})
    assert wrong.status_code == 403 and "not your password" in wrong.text
    assert (await stranger.post("/privacy/erasure", {"password": world.PASSWORD})).status_code == 303
    assert 'id="erasure-open"' in (await stranger.http.get("/privacy")).text
    family = await stack.as_user(world.FAMILY)
    asked = await family.post("/api/v1/me/privacy/erasure", json={"password": world.PASSWORD})
    assert asked.status_code == 201, asked.text
    told = (await family.get("/api/v1/me/notifications")).json()["notifications"]
    assert [n["kind"] for n in told] == ["erasure_requested"]
    async with stack.db.session() as session:
        requests = {r.account_id: r.id for r in await session.scalars(select(ErasureRequest))}
    stranger_request, family_request = requests[stranger_id], requests[family_id]

    # REQ: PRV-5 — the other dealer sees nothing and gets the same 404 as for a missing request.
    berlin = await Browser(stack).sign_in(world.OTHER_DEALER)
    assert (
        f'data-request="{stranger_request}"' not in (await berlin.http.get("/dealer/erasure-requests")).text
    )
    assert (await berlin.post(f"/dealer/erasure-requests/{stranger_request}/complete")).status_code == 404
    dealer = await Browser(stack).sign_in(world.DEALER)
    listed = (await dealer.http.get("/dealer/erasure-requests")).text
    assert f'data-request="{stranger_request}"' in listed and f'data-request="{family_request}"' not in listed
    assert (await dealer.post(f"/dealer/erasure-requests/{family_request}/complete")).status_code == 404
    assert (await dealer.post(f"/dealer/erasure-requests/{stranger_request}/complete")).status_code == 303
    # Completing twice is harmless.
    assert (await dealer.post(f"/dealer/erasure-requests/{stranger_request}/complete")).status_code == 303
    operator = await Browser(stack).sign_in(world.OPERATOR)
    assert f'data-request="{family_request}"' in (await operator.http.get("/operator/erasure-requests")).text
    # Two operators completing at the same moment take turns: one erasure, one mail.
    both = await asyncio.gather(
        *(operator.post(f"/operator/erasure-requests/{family_request}/complete") for _ in range(2))
    )
    assert [r.status_code for r in both] == [303, 303]
    assert (
        await operator.post(f"/operator/erasure-requests/{family_request}/reject", {"reason": "x"})
    ).status_code == 409

    async with stack.db.session() as session:
        erased = await session.get(Account, stranger_id)
        assert erased is not None
        assert erased.email == f"erased-{stranger_id}@erased.invalid" and erased.display_name == ""
        assert erased.deleted_at is not None and erased.pin_hash is None
        assert not identity.verify_secret(erased.password_hash, world.PASSWORD)
        for model, column in (
            (WebSession, WebSession.account_id),
            (Notification, Notification.account_id),
            (BillingAddress, BillingAddress.account_id),
            (PreferredPartner, PreferredPartner.account_id),
            (ConsentEvent, ConsentEvent.account_id),
            (VehicleUser, VehicleUser.account_id),
        ):
            left = await session.scalar(
                select(func.count()).select_from(model).where(column.in_([stranger_id, family_id]))
            )
            assert left == 0, model.__name__
        assert await session.scalar(select(func.count()).select_from(InvitationRequest)) == 0
        mails = list(
            await session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == world.STRANGER))
        )
        assert [(m.template, m.account_id) for m in mails] == [("erasure_completed", None)]
        assert (
            await session.scalar(
                select(func.count()).select_from(OutboxEmail).where(OutboxEmail.to_address == world.FAMILY)
            )
            == 1
        )
        done = await session.get(ErasureRequest, stranger_request)
        assert done is not None and done.state == "completed" and done.decided_role == "dealer"
        trail = list(
            await session.scalars(
                select(PrivacyAuditEntry)
                .where(PrivacyAuditEntry.erasure_request_id == stranger_request)
                .order_by(PrivacyAuditEntry.id)
            )
        )
        owner_orders = await session.scalar(select(func.count()).select_from(Order))
    assert trail[0].action == "erasure.requested" and trail[0].actor_role == "person"
    assert trail[-1].action == "erasure.completed" and trail[-1].actor_role == "dealer"
    assert {e.detail.get("domain") for e in trail if e.action == "erasure.domain_erased"} == {
        "identity",
        "garage",
        "store",
        "notify",
        "privacy",
        "partners",
        "incar",
    }
    assert world.STRANGER not in json.dumps([e.detail for e in trail]) and owner_orders is not None
    # The erased person is signed out, and the address is free for a new ID.
    assert (await stranger.http.get("/privacy")).status_code == 303
    again = await stranger.http.post(
        "/api/v1/accounts",
        json={
            "email": world.STRANGER,
            "password": "a-new-password",
            "country": "DE",
            "display_name": "Robin",
        },
    )
    assert again.status_code == 201, again.text
    for client in (stranger.http, family, berlin.http, dealer.http, operator.http):
        await client.aclose()
