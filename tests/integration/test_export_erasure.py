"""Export and erasure of a person's data (PRV-5, ACC-5): the ZIP holds everything about the person and no
secret; an erasure request is refused while the person is still the main user of a car with running
contracts, and completing it (by an operator, or by the person's own dealer) really removes or anonymises the
data, keeps an audit trail without personal data, mails the old address and frees it for a new ID."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import uuid
import zipfile

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.errors import Conflict
from carlink.garage import service as garage
from carlink.garage.models import VehicleUser
from carlink.identity import service as identity
from carlink.identity.models import (
    Account,
    Invitation,
    InvitationRequest,
    LoginTransaction,
    RefreshToken,
    WebSession,
)
from carlink.notify.models import Notification, OutboxEmail
from carlink.notify.service import notify
from carlink.partners import service as partners
from carlink.partners.models import PreferredPartner, Sale
from carlink.privacy import erasure
from carlink.privacy.models import ConsentEvent, ErasureRequest, PrivacyAuditEntry
from carlink.remote.models import AuditEntry, PinChallenge, RemoteCommand
from carlink.store.models import BillingAddress, Contract, Order, Payment, PaymentMethod
from tests.integration.test_store_checkout import ready_cart
from tests.support.portal import Browser, account_id, partner_id
from tests.support.purchases import VISA
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
        "exp_month": VISA["exp_month"],
        "exp_year": VISA["exp_year"],
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
        "fod",
        "security",
        "notify",
        "privacy",
        "partners",
        "incar",
        "remote",
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


async def _remote_traces(session: AsyncSession, account: int, vin: str) -> None:
    """A remote command, its audit entry and a PIN challenge of the person, as the remote domain writes."""
    vehicle = await garage.vehicle_by_vin(session, vin)
    assert vehicle is not None
    now = utcnow()
    session.add(
        RemoteCommand(
            id=str(uuid.uuid4()),
            vehicle_id=vehicle.id,
            account_id=account,
            type="lock",
            params={"secret-param": "p"},
            state="succeeded",
            created_at=now,
            expires_at=now + dt.timedelta(minutes=1),
            finished_at=now,
            envelope={"signature": "SIGNATURE-NEVER-EXPORTED"},
        )
    )
    session.add(AuditEntry(account_id=account, vehicle_id=vehicle.id, action="command.accepted", detail={}))
    session.add(
        PinChallenge(
            id=str(uuid.uuid4()),
            challenge=uuid.uuid4().hex.upper(),
            vehicle_id=vehicle.id,
            account_id=account,
            expires_at=now + dt.timedelta(minutes=1),
        )
    )


async def test_export_holds_renewals_mails_to_the_address_unlinked_sales_and_remote_commands(
    stack: Stack,
) -> None:
    owner = await stack.as_user(world.OWNER)
    owner_id = await account_id(stack, world.OWNER)
    cart = await ready_cart(owner, TAYCAN, "remote-services", "P1Y")
    order = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": cart["revision"]})
    assert order.status_code == 201, order.text
    stuttgart = await partner_id(stack, "DE-STR-01")
    async with stack.db.transaction() as session:
        contract = await session.scalar(select(Contract).where(Contract.buyer_account_id == owner_id))
        assert contract is not None
        # A renewal is charged on the contract, bound to no order.
        session.add(
            Payment(
                idempotency_key="renewal-test-1",
                kind="charge",
                contract_id=contract.id,
                gateway_ref="ch_renewal",
                amount_minor=4321,
                currency="EUR",
            )
        )
        session.add(
            OutboxEmail(
                dedupe_key="to-the-address",
                to_address=world.OWNER,
                language="en",
                template="invitation",
                subject="Before the ID",
                body_text="Hello",
            )
        )
        vehicle = await garage.vehicle_by_vin(session, TAYCAN)
        assert vehicle is not None
        session.add(
            Sale(partner_id=stuttgart, vehicle_id=vehicle.id, buyer_email=world.OWNER, buyer_name="Alex")
        )
        await _remote_traces(session, owner_id, TAYCAN)
        number = contract.number

    response = await owner.get("/api/v1/me/export")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    raw = archive.read("data.json").decode()
    data = json.loads(raw)
    renewals = [p for p in data["store"]["payments"] if p["order_id"] is None]
    assert renewals == [
        {"kind": "charge", "amount_minor": 4321, "currency": "EUR", "order_id": None, "contract": number}
        | {"at": renewals[0]["at"]}
    ]
    assert "Before the ID" in [m["subject"] for m in data["notify"]["emails"]]
    purchases = [(p["buyer_email"], p["buyer_name"]) for p in data["partners"]["purchases"]]
    assert (world.OWNER, "Alex") in purchases
    [command] = data["remote"]["commands"]
    assert (command["vin"], command["type"], command["state"]) == (TAYCAN, "lock", "succeeded")
    assert command["finished_at"] is not None
    assert "SIGNATURE-NEVER-EXPORTED" not in raw and "secret-param" not in raw and "challenge" not in raw
    summary = archive.read("summary.html").decode()
    assert "€43.21" in summary and number in summary and "Remote commands" in summary
    await owner.aclose()


async def test_erasure_leaves_nothing_behind_in_sales_invitations_cars_sign_ins_and_remote(
    stack: Stack,
) -> None:
    person_id = await account_id(stack, world.JAPAN_OWNER)
    stuttgart = await partner_id(stack, "DE-STR-01")
    vin = world.JAPAN_CAR.vin
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, vin)
        assert vehicle is not None
        vehicle.remote_access_authorised = True
        # A sale to the address, never linked (the buyer never used its invitation), and that invitation.
        sale = Sale(
            partner_id=stuttgart, vehicle_id=vehicle.id, buyer_email=world.JAPAN_OWNER, buyer_name="H"
        )
        session.add(sale)
        await session.flush()
        session.add(
            Invitation(
                token_hash="a" * 64,
                sale_id=sale.id,
                partner_id=stuttgart,
                email=world.JAPAN_OWNER,
                country="JP",
                expires_at=utcnow() + dt.timedelta(days=14),
            )
        )
        # A sign-in started with the address, before any account is known.
        session.add(
            LoginTransaction(
                state="s" * 40,
                client_id="carlink-app",
                redirect_uri="https://app.example.com/cb",
                username=world.JAPAN_OWNER,
                expires_at=utcnow() + dt.timedelta(minutes=10),
            )
        )
        await _remote_traces(session, person_id, vin)

    person = await stack.as_user(world.JAPAN_OWNER)
    asked = await person.post("/api/v1/me/privacy/erasure", json={"password": world.PASSWORD})
    assert asked.status_code == 201, asked.text
    operator = await Browser(stack).sign_in(world.OPERATOR)
    done = await operator.post(f"/operator/erasure-requests/{asked.json()['id']}/complete")
    assert done.status_code == 303, done.text

    async with stack.db.session() as session:
        sales = list(await session.scalars(select(Sale).where(Sale.id == sale.id)))
        assert [(s.buyer_email, s.buyer_name) for s in sales] == [(f"erased-{person_id}@erased.invalid", "")]
        invitation = await session.scalar(select(Invitation).where(Invitation.sale_id == sale.id))
        assert invitation is not None and invitation.cancelled_at is not None
        assert invitation.email == f"erased-{person_id}@erased.invalid"
        # The car's remote access is reset, as when the ID leaves it (VEH-5).
        vehicle = await garage.vehicle_by_vin(session, vin)
        assert vehicle is not None and not vehicle.remote_access_authorised
        assert vehicle.remote_access_reset_pending
        assert await session.scalar(select(func.count()).select_from(LoginTransaction)) == 0
        assert (
            await session.scalar(
                select(func.count()).select_from(PinChallenge).where(PinChallenge.account_id == person_id)
            )
            == 0
        )
        # Commands and the car's log stay with the car, naming nobody.
        commands = list(await session.scalars(select(RemoteCommand)))
        assert [c.account_id for c in commands] == [None]
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.vehicle_id == vehicle.id)))
        assert entries and {e.account_id for e in entries} == {None}
        domains = {
            e.detail.get("domain")
            for e in await session.scalars(
                select(PrivacyAuditEntry).where(PrivacyAuditEntry.action == "erasure.domain_erased")
            )
        }
    assert "remote" in domains
    for client in (person, operator.http):
        await client.aclose()


async def test_a_refusing_domain_rolls_the_whole_erasure_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger_id = await account_id(stack, world.STRANGER)

    async def refuses(session: AsyncSession, account: int) -> None:
        raise Conflict("not now", code="erasure_refused_by_test")

    # The refusal comes after the identity has been anonymised: that must not stay.
    monkeypatch.setattr(erasure, "ERASERS", (*erasure.ERASERS, ("refuses", refuses)))
    stranger = await stack.as_user(world.STRANGER)
    asked = await stranger.post("/api/v1/me/privacy/erasure", json={"password": world.PASSWORD})
    assert asked.status_code == 201, asked.text
    operator = await Browser(stack).sign_in(world.OPERATOR)
    refused = await operator.post(f"/operator/erasure-requests/{asked.json()['id']}/complete")
    assert refused.status_code == 409 and "not now" in refused.text
    async with stack.db.session() as session:
        account = await session.get(Account, stranger_id)
        request = await session.get(ErasureRequest, asked.json()["id"])
        steps = list(
            await session.scalars(
                select(PrivacyAuditEntry.action)
                .where(PrivacyAuditEntry.erasure_request_id == asked.json()["id"])
                .order_by(PrivacyAuditEntry.id)
            )
        )
        told = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.account_id == stranger_id)
        )
    assert account is not None and account.email == world.STRANGER and account.deleted_at is None
    assert request is not None and request.state == "requested"
    # The trail keeps the refused attempt, and nothing of the rolled-back steps.
    assert steps == ["erasure.requested", "erasure.started"] and told == 1
    for client in (stranger, operator.http):
        await client.aclose()


async def test_a_deleted_id_gets_its_erasure_request_from_deletion_or_from_an_operator(stack: Stack) -> None:
    stranger_id = await account_id(stack, world.STRANGER)
    family_id = await account_id(stack, world.FAMILY)
    # REQ: ACC-5, PRV-5 — deleting the ID with "Also erase my data" opens the request at once.
    async with stack.db.transaction() as session:
        family = await session.get(Account, family_id)
        assert family is not None
        family.deleted_at = utcnow()
        opened = await erasure.request_after_deletion(session, family)
        again = await erasure.request_after_deletion(session, family)
    assert opened.id == again.id and opened.state == "requested"

    # An operator opens one for a person who deleted their ID and wrote to the privacy contact.
    async with stack.db.transaction() as session:
        stranger = await session.get(Account, stranger_id)
        assert stranger is not None
        stranger.deleted_at = utcnow()
    operator = await Browser(stack).sign_in(world.OPERATOR)
    page = (await operator.http.get("/operator/erasure-requests")).text
    assert 'id="open-request"' in page
    unknown = await operator.post("/operator/erasure-requests/open", {"email": "nobody@example.com"})
    assert unknown.status_code == 400 and "No ID has this email address" in unknown.text
    assert 'value="nobody@example.com"' in unknown.text
    both = await asyncio.gather(
        *(
            operator.post("/operator/erasure-requests/open", {"email": " Stranger@Example.com "})
            for _ in range(2)
        )
    )
    assert [r.status_code for r in both] == [303, 303]
    assert "The erasure request is open" in (await operator.http.get(both[0].headers["location"])).text
    operator_id = await account_id(stack, world.OPERATOR)
    async with stack.db.session() as session:
        requests = list(
            await session.scalars(select(ErasureRequest).where(ErasureRequest.account_id == stranger_id))
        )
        trail = list(
            await session.scalars(
                select(PrivacyAuditEntry).where(PrivacyAuditEntry.subject_account_id == stranger_id)
            )
        )
        deletion_trail = list(
            await session.scalars(
                select(PrivacyAuditEntry).where(PrivacyAuditEntry.subject_account_id == family_id)
            )
        )
    assert [r.state for r in requests] == ["requested"]
    assert [(e.action, e.actor_id, e.actor_role, e.erasure_request_id) for e in trail] == [
        ("erasure.requested", operator_id, "operator", requests[0].id)
    ]
    assert [(e.action, e.detail) for e in deletion_trail] == [("erasure.requested", {"with_deletion": True})]
    await operator.http.aclose()


async def test_asking_twice_at_once_opens_one_erasure_request(stack: Stack) -> None:
    stranger_id = await account_id(stack, world.STRANGER)
    stranger = await stack.as_user(world.STRANGER)
    both = await asyncio.gather(
        *(stranger.post("/api/v1/me/privacy/erasure", json={"password": world.PASSWORD}) for _ in range(2))
    )
    assert [r.status_code for r in both] == [201, 201]
    assert both[0].json()["id"] == both[1].json()["id"]
    async with stack.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(ErasureRequest).where(ErasureRequest.account_id == stranger_id)
        )
    assert count == 1
    await stranger.aclose()
