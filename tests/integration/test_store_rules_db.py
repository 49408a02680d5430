"""The catalogue (STO-1, STO-6) and the sandbox payment gateway on the real databases, SQLite and
PostgreSQL: prices per country, versioned offers and terms, idempotent charges and refunds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from carlink.catalog import service as catalog
from carlink.catalog.countries import STORE_COUNTRIES
from carlink.catalog.models import Offer, TermsVersion
from carlink.catalog.money import format_money
from carlink.catalog.seed import ensure_catalogue
from carlink.db.base import Database
from carlink.db.migrate import upgrade
from carlink.errors import CarlinkError, NotFound
from carlink.store.payments import (
    SANDBOX_CHALLENGE_CODE,
    CardInput,
    ChargeStatus,
    SandboxCard,
    SandboxCharge,
    SandboxGateway,
    SandboxRefund,
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await upgrade(database_url)  # at head already: upgrading again changes nothing
    database = Database(database_url)
    async with database.transaction() as session:
        await ensure_catalogue(session)
    try:
        yield database
    finally:
        await database.dispose()


async def _count(db: Database, model: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _offer(db: Database, country: str, service: str, term: str) -> Offer:
    async with db.session() as session:
        row = await session.scalar(
            select(Offer).where(
                Offer.country == country,
                Offer.service_code == service,
                Offer.term == term,
                Offer.retired_at.is_(None),
            )
        )
    assert row is not None
    return row


# --- the catalogue per country (STO-1) ---------------------------------------------------------------------


@pytest.mark.parametrize("country", sorted(STORE_COUNTRIES))
async def test_every_country_sells_in_its_own_currency(db: Database, country: str) -> None:
    async with db.session() as session:
        items = await catalog.services_for(session, country=country)
    offers = [offer for item in items for offer in item.offers]
    assert offers
    assert {o.currency for o in offers} == {STORE_COUNTRIES[country].currency}
    assert all(o.country == country and o.retired_at is None for o in offers)
    assert all(o.price_minor == 0 for o in offers if o.trial)
    assert all(o.price_minor > 0 for o in offers if not o.trial)


async def test_prices_in_japan_are_whole_yen(db: Database) -> None:
    remote = await _offer(db, "JP", "remote-services", "P1Y")
    assert (remote.price_minor, remote.currency) == (13200, "JPY")
    assert format_money(remote.price_minor, remote.currency, "ja") == "￥13,200"
    germany = await _offer(db, "DE", "remote-services", "P1Y")
    assert (germany.price_minor, germany.currency) == (9900, "EUR")
    assert format_money(germany.price_minor, germany.currency, "de") == "99,00\xa0€"


async def test_the_carrier_service_is_sold_in_japan_but_not_in_germany(db: Database) -> None:
    async with db.session() as session:
        japan = {i.service.code for i in await catalog.services_for(session, country="JP")}
        germany = {i.service.code for i in await catalog.services_for(session, country="DE")}
    assert "carrier-connect" in japan
    assert "carrier-connect" not in germany
    assert {"remote-services", "navigation-plus", "wifi-1gb"} <= japan & germany


async def test_the_carrier_service_has_a_free_trial_and_then_a_country_price(db: Database) -> None:
    async with db.session() as session:
        items = await catalog.services_for(session, country="JP")
    carrier = next(i for i in items if i.service.code == "carrier-connect")
    assert carrier.service.carrier_run
    assert [(o.term, o.trial, o.price_minor) for o in carrier.offers] == [
        ("trial", True, 0),
        ("P1Y", False, 7920),
    ]


@pytest.mark.parametrize(
    ("model", "engine", "offered"),
    [("taycan-1", "BEV", True), ("panamera-2", "PHEV", True), ("911-7", "COMBUSTION", False)],
)
async def test_the_charging_planner_is_offered_only_for_electric_and_hybrid_cars(
    db: Database, model: str, engine: str, offered: bool
) -> None:
    async with db.session() as session:
        codes = {
            i.service.code
            for i in await catalog.services_for(session, country="DE", model_key=model, engine=engine)
        }
    assert ("charging-planner" in codes) is offered
    assert "remote-services" in codes


async def test_seeding_the_catalogue_again_adds_nothing(db: Database) -> None:
    offers, terms = await _count(db, Offer), await _count(db, TermsVersion)
    async with db.transaction() as session:
        await ensure_catalogue(session)
    assert (await _count(db, Offer), await _count(db, TermsVersion)) == (offers, terms)


# --- revising offers: a new version, the old one kept ---------------------------------------------------


async def test_a_new_price_retires_the_offer_and_adds_its_next_version(db: Database) -> None:
    old = await _offer(db, "DE", "navigation-plus", "P1Y")
    async with db.transaction() as session:
        new = await catalog.revise_offer(session, old.id, price_minor=10900)
    assert (new.version, new.price_minor, new.term, new.currency) == (2, 10900, "P1Y", "EUR")
    assert new.id != old.id
    async with db.session() as session:
        kept = await session.get(Offer, old.id)
        items = await catalog.services_for(session, country="DE")
    assert kept is not None and kept.retired_at is not None and kept.price_minor == old.price_minor
    navigation = next(i for i in items if i.service.code == "navigation-plus")
    assert [o.id for o in navigation.offers if o.term == "P1Y"] == [new.id]


async def test_a_retired_offer_cannot_be_revised_again(db: Database) -> None:
    old = await _offer(db, "DE", "tracking", "P1Y")
    async with db.transaction() as session:
        await catalog.revise_offer(session, old.id, price_minor=20900)
    with pytest.raises(NotFound) as refused:
        async with db.transaction() as session:
            await catalog.revise_offer(session, old.id, price_minor=21900)
    assert refused.value.code == "offer_not_found"


async def test_a_trial_stays_free_and_a_price_is_never_negative(db: Database) -> None:
    trial = await _offer(db, "DE", "remote-services", "trial")
    paid = await _offer(db, "DE", "remote-services", "P1Y")
    for offer_id, price in ((trial.id, 100), (paid.id, -1)):
        with pytest.raises(ValueError):
            async with db.transaction() as session:
                await catalog.revise_offer(session, offer_id, price_minor=price)
    assert (await _offer(db, "DE", "remote-services", "P1Y")).id == paid.id  # nothing changed


# --- terms versions (STO-6) -----------------------------------------------------------------------------


async def test_new_terms_are_version_two_and_version_one_stays_readable(db: Database) -> None:
    async with db.session() as session:
        [first] = await catalog.terms_in_force(session, ["general"], "en")
    assert first.version == 1
    async with db.transaction() as session:
        second = await catalog.publish_terms(
            session, "general", "en", title="carlink general terms", body="1. New rules.\n"
        )
    assert second.version == 2
    async with db.session() as session:
        [in_force] = await catalog.terms_in_force(session, ["general"], "en")
        old = await catalog.terms_version(session, first.id)
        [german] = await catalog.terms_in_force(session, ["general"], "de")
    assert (in_force.id, in_force.body) == (second.id, "1. New rules.\n")
    assert (old.version, old.body) == (1, first.body)
    assert "14 days" in old.body
    assert german.version == 1  # only the English text changed


async def test_terms_come_in_the_persons_language_or_else_in_english(db: Database) -> None:
    async with db.session() as session:
        japanese = await catalog.terms_in_force(session, ["general", "wifi-1gb"], "ja")
        french = await catalog.terms_in_force(session, ["general", "wifi-1gb"], "fr")
    assert [(t.document, t.language) for t in japanese] == [("general", "ja"), ("wifi-1gb", "ja")]
    assert [(t.document, t.language) for t in french] == [("general", "en"), ("wifi-1gb", "en")]


async def test_unknown_terms_are_not_found(db: Database) -> None:
    async with db.session() as session:
        assert await catalog.terms_in_force(session, ["no-such-service"], "en") == []
        with pytest.raises(NotFound):
            await catalog.terms_version(session, 10**6)


# --- the sandbox payment gateway ---------------------------------------------------------------------------

VISA = CardInput("4242 4242 4242 4242", 12, 2030, "123")


async def _token(gateway: SandboxGateway, number: str = VISA.number) -> str:
    return str((await gateway.tokenise(CardInput(number, 12, 2030, "123"))).token)


async def test_the_gateway_keeps_a_token_and_the_last_four_never_the_number(db: Database) -> None:
    gateway = SandboxGateway(db)
    card = await gateway.tokenise(VISA)
    assert (card.brand.value, card.last4) == ("VISA", "4242")
    assert "4242424242424242" not in card.token
    async with db.session() as session:
        row = await session.get(SandboxCard, card.token)
    assert row is not None and row.last4 == "4242"


@pytest.mark.parametrize(
    ("card", "code"),
    [
        (CardInput("4242 4242 4242 4241", 12, 2030, "123"), "card_number_invalid"),
        (CardInput("4242 4242 4242 4242", 1, 2020, "123"), "card_expired"),
        (CardInput("4242 4242 4242 4242", 13, 2030, "123"), "card_expiry_invalid"),
        (CardInput("4242 4242 4242 4242", 12, 2030, "12"), "card_cvc_invalid"),
        (CardInput("6011 1111 1111 1117", 12, 2030, "123"), "card_brand_unknown"),
    ],
)
async def test_the_gateway_refuses_a_card_it_cannot_take(db: Database, card: CardInput, code: str) -> None:
    with pytest.raises(CarlinkError) as refused:
        await SandboxGateway(db).tokenise(card)
    assert (refused.value.status, refused.value.code) == (422, code)
    assert await _count(db, SandboxCard) == 0


async def test_the_same_idempotency_key_twice_charges_once(db: Database) -> None:
    gateway = SandboxGateway(db)
    token = await _token(gateway)
    first = await gateway.charge(token=token, amount_minor=9900, currency="EUR", idempotency_key="order-1")
    again = await gateway.charge(token=token, amount_minor=9900, currency="EUR", idempotency_key="order-1")
    assert first == again and first.status is ChargeStatus.SUCCEEDED
    assert await _count(db, SandboxCharge) == 1
    assert await gateway.find_charge("order-1") == first
    assert await gateway.find_charge("order-2") is None


async def test_the_same_key_from_two_instances_at_once_charges_once(database_url: str, db: Database) -> None:
    other = Database(database_url)  # a second process on the same books
    try:
        gateways = [SandboxGateway(db), SandboxGateway(other)]
        token = await _token(gateways[0])
        results = await asyncio.gather(
            *(
                gateways[i % 2].charge(
                    token=token, amount_minor=4900, currency="EUR", idempotency_key="order-race"
                )
                for i in range(10)
            )
        )
    finally:
        await other.dispose()
    assert {r.id for r in results} == {results[0].id}
    assert await _count(db, SandboxCharge) == 1


@pytest.mark.parametrize(
    ("number", "code"),
    [("4000 0000 0000 0002", "card_declined"), ("4000 0000 0000 9995", "insufficient_funds")],
)
async def test_a_declined_card_is_declined_with_its_reason(db: Database, number: str, code: str) -> None:
    gateway = SandboxGateway(db)
    result = await gateway.charge(
        token=await _token(gateway, number), amount_minor=500, currency="EUR", idempotency_key="k"
    )
    assert (result.status, result.decline_code) == (ChargeStatus.DECLINED, code)
    with pytest.raises(NotFound):  # nothing was paid, so nothing can be refunded
        await gateway.refund(charge_id=result.id, amount_minor=500, idempotency_key="r")


async def test_the_right_challenge_code_completes_the_charge(db: Database) -> None:
    gateway = SandboxGateway(db)
    token = await _token(gateway, "4000 0000 0000 3220")
    asked = await gateway.charge(token=token, amount_minor=990, currency="EUR", idempotency_key="k")
    assert asked.status is ChargeStatus.REQUIRES_ACTION
    done = await gateway.answer_challenge(asked.id, SANDBOX_CHALLENGE_CODE)
    assert (done.id, done.status) == (asked.id, ChargeStatus.SUCCEEDED)
    again = await gateway.answer_challenge(asked.id, "000000")  # decided: a later answer changes nothing
    assert again.status is ChargeStatus.SUCCEEDED


async def test_a_wrong_challenge_code_declines_the_charge(db: Database) -> None:
    gateway = SandboxGateway(db)
    token = await _token(gateway, "4000 0000 0000 3220")
    asked = await gateway.charge(token=token, amount_minor=990, currency="EUR", idempotency_key="k")
    refused = await gateway.answer_challenge(asked.id, "654321")
    assert (refused.status, refused.decline_code) == (ChargeStatus.DECLINED, "authentication_failed")
    late = await gateway.answer_challenge(asked.id, SANDBOX_CHALLENGE_CODE)
    assert late.status is ChargeStatus.DECLINED
    assert (await gateway.find_charge("k")) == late


async def test_a_challenge_for_an_unknown_charge_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await SandboxGateway(db).answer_challenge("ch_nope", SANDBOX_CHALLENGE_CODE)


async def test_a_charge_is_for_a_positive_amount_with_a_known_card(db: Database) -> None:
    gateway = SandboxGateway(db)
    token = await _token(gateway)
    with pytest.raises(ValueError):
        await gateway.charge(token=token, amount_minor=0, currency="EUR", idempotency_key="zero")
    with pytest.raises(NotFound):
        await gateway.charge(token="tok_nope", amount_minor=100, currency="EUR", idempotency_key="nope")
    assert await _count(db, SandboxCharge) == 0


async def test_the_same_refund_key_twice_refunds_once(db: Database) -> None:
    gateway = SandboxGateway(db)
    charge = await gateway.charge(
        token=await _token(gateway), amount_minor=9900, currency="EUR", idempotency_key="k"
    )
    first = await gateway.refund(charge_id=charge.id, amount_minor=9900, idempotency_key="refund-1")
    again = await gateway.refund(charge_id=charge.id, amount_minor=9900, idempotency_key="refund-1")
    assert first == again
    async with db.session() as session:
        refunds = list(await session.scalars(select(SandboxRefund)))
        booked = await session.get(SandboxCharge, charge.id)
    assert [(r.id, r.amount_minor) for r in refunds] == [(first, 9900)]
    assert booked is not None and booked.refunded_minor == 9900


async def test_a_refund_above_the_charge_is_refused(db: Database) -> None:
    gateway = SandboxGateway(db)
    charge = await gateway.charge(
        token=await _token(gateway), amount_minor=9900, currency="EUR", idempotency_key="k"
    )
    with pytest.raises(CarlinkError) as refused:
        await gateway.refund(charge_id=charge.id, amount_minor=9901, idempotency_key="too-much")
    assert (refused.value.status, refused.value.code) == (409, "refund_too_large")
    await gateway.refund(charge_id=charge.id, amount_minor=6000, idempotency_key="part-1")
    with pytest.raises(CarlinkError) as refused:  # two parts may not add up to more than was paid
        await gateway.refund(charge_id=charge.id, amount_minor=4000, idempotency_key="part-2")
    assert refused.value.code == "refund_too_large"
    await gateway.refund(charge_id=charge.id, amount_minor=3900, idempotency_key="part-3")
    async with db.session() as session:
        booked = await session.get(SandboxCharge, charge.id)
    assert booked is not None and booked.refunded_minor == 9900
    assert await _count(db, SandboxRefund) == 2
