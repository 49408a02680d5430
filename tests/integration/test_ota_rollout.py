"""Software update campaigns on the real databases (OTA-1..4, docs/fod.md "Rollout"): consent per car, the
cars a campaign targets, waves that open on success, the automatic pause on failures, cancel, and how each
car's reports move its delivery. The car side over the broker is in test_fod_in_car.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from carlink.clock import clock
from carlink.db.base import Database
from carlink.demo import world
from carlink.errors import CarlinkError
from carlink.fod import functions, updates
from carlink.fod import service as packages
from carlink.fod.models import Delivery, UpdateCampaign, UpdateConsent, VehicleDeliveries
from carlink.fod.rules import CampaignState
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.platform import Platform
from carlink.protocol.messages import DeliveryReport
from carlink.settings import Settings

MACAN = "macan-2"  # every third fleet car, and one demo car whose person never switches updates on
FLEET = 60  # 20 of them Macans


@dataclass
class World:
    platform: Platform
    operator: Account
    fleet: Account
    macans: list[Vehicle]

    @property
    def db(self) -> Database:
        return self.platform.db


@pytest.fixture
async def ota(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    db = Database(database_url)
    settings = Settings(database_url=database_url, package_dir=str(tmp_path / "packages"))
    async with db.transaction() as session:
        await world.seed(session)
        vins = await world.ensure_sim_fleet(session, FLEET)
        await packages.add_package(session, settings, "macan-sw-2.0.0.bin", b"new software" * 1000)
    async with db.session() as session:
        operator = await session.scalar(select(Account).where(Account.email == world.OPERATOR))
        fleet = await session.scalar(select(Account).where(Account.email == world.FLEET_OWNER))
        macans = list(
            await session.scalars(
                select(Vehicle).where(Vehicle.model_key == MACAN, Vehicle.vin.in_(vins)).order_by(Vehicle.id)
            )
        )
    assert operator is not None and fleet is not None and len(macans) == FLEET // 3
    yield World(Platform(settings=settings, db=db), operator, fleet, macans)
    await db.dispose()


def plan(**changes: object) -> updates.CampaignInput:
    values: dict[str, object] = {
        "name": "Macan infotainment 2.0",
        "package": "macan-sw-2.0.0.bin",
        "model_key": MACAN,
        "variants": [],
        "version_from": "1.0.0",
        "version_below": "2.0.0",
        "to_version": "2.0.0",
        "waves": [10, 50, 100],
        "success_threshold": 80,
        "error_threshold": 20,
    }
    return updates.CampaignInput(**(values | changes))  # type: ignore[arg-type]


async def consent_all(w: World, vehicles: list[Vehicle], enabled: bool = True) -> None:
    async with w.db.transaction() as session:
        for vehicle in vehicles:
            await updates.set_consent(session, w.fleet, vehicle.vin, enabled)


async def create(w: World, data: updates.CampaignInput) -> UpdateCampaign:
    async with w.db.transaction() as session:
        return (await updates.create_campaign(session, w.operator, data)).campaign


async def campaign_deliveries(w: World, campaign_id: int) -> list[Delivery]:
    async with w.db.session() as session:
        return list(
            await session.scalars(
                select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
            )
        )


async def report(w: World, delivery: Delivery, state: str, **fields: object) -> str:
    """The car's report as the gateway applies it; returns the delivery's state afterwards."""
    message = DeliveryReport.model_validate(
        {"delivery": delivery.id, "state": state, "at": clock.now(), **fields}
    )
    async with w.db.transaction() as session:
        vehicle = await session.get(Vehicle, delivery.vehicle_id)
        assert vehicle is not None
        await functions.handle_report(session, vehicle, message)
    async with w.db.session() as session:
        row = await session.get(Delivery, delivery.id)
        assert row is not None
        return row.state


async def state_of(w: World, campaign_id: int) -> UpdateCampaign:
    async with w.db.session() as session:
        row = await session.get(UpdateCampaign, campaign_id)
        assert row is not None
        return row


async def test_a_campaign_that_targets_no_car_is_refused(ota: World) -> None:
    for data in (
        plan(version_from="7.0.0", version_below="8.0.0", to_version="8.0.0"),
        plan(model_key="718"),  # no 718 in the world
    ):
        with pytest.raises(CarlinkError) as refused:
            await create(ota, data)
        assert refused.value.code == "campaign_targets_no_car"
    async with ota.db.session() as session:
        assert await updates.campaigns(session) == []


BAD_INPUT: list[tuple[dict[str, object], str]] = [
    ({"waves": [50, 40, 100]}, "invalid_waves"),
    ({"waves": [10, 50]}, "invalid_waves"),
    ({"model_key": "model-t"}, "unknown_model"),
    ({"variants": ["Y1ADB1"]}, "unknown_variant"),  # a Taycan variant
    ({"version_from": "2.0.0"}, "invalid_version_range"),
    ({"to_version": "1.5.0"}, "invalid_version_range"),
    ({"version_from": "one"}, "invalid_version"),
    ({"error_threshold": 0}, "invalid_threshold"),
    ({"package": "no-such-package"}, "package_not_found"),
]


async def test_campaign_input_is_checked(ota: World) -> None:
    for changes, code in BAD_INPUT:  # one world for all cases: each is refused before anything is written
        with pytest.raises(CarlinkError) as refused:
            await create(ota, plan(**changes))
        assert refused.value.code == code, changes
    async with ota.db.session() as session:
        assert await updates.campaigns(session) == []


async def test_only_cars_whose_person_switched_updates_on_are_offered(ota: World) -> None:
    consenting, others = ota.macans[:5], ota.macans[5:]
    await consent_all(ota, consenting)
    await consent_all(ota, others[:3])
    await consent_all(ota, others[:3], enabled=False)  # on, then off again: the latest counts
    async with ota.db.session() as session:
        history = list(await session.scalars(select(UpdateConsent).order_by(UpdateConsent.id)))
    assert len(history) == 5 + 3 + 3
    assert all(row.account_id == ota.fleet.id and row.at is not None for row in history)
    async with ota.db.transaction() as session:
        created = await updates.create_campaign(session, ota.operator, plan(waves=[100]))
    assert (created.matching, created.consented) == (21, 5)
    assert await updates.run_rollouts(ota.platform) == 5
    offered = await campaign_deliveries(ota, created.campaign.id)
    assert sorted(d.vehicle_id for d in offered) == [v.id for v in consenting]
    assert {d.state for d in offered} == {"offered"}
    async with ota.db.session() as session:
        revisions = {row.vehicle_id: row.revision for row in await session.scalars(select(VehicleDeliveries))}
    assert all(revisions[v.id] == 1 for v in consenting) and not set(revisions) & {v.id for v in others}
    assert await updates.run_rollouts(ota.platform) == 0  # nothing twice


async def test_waves_open_on_success_and_the_campaign_pauses_itself_on_failures(ota: World) -> None:
    await consent_all(ota, ota.macans)
    campaign = await create(ota, plan())
    assert await updates.run_rollouts(ota.platform) == 2  # 10 % of 20
    first = await campaign_deliveries(ota, campaign.id)
    assert await report(ota, first[0], "downloading", have=10, length=12000) == "downloading"
    assert await report(ota, first[0], "downloaded") == "downloaded"
    assert await updates.run_rollouts(ota.platform) == 0  # the wave has not succeeded yet
    for delivery in first:
        assert await report(ota, delivery, "installed", version="2.0.0") == "installed"
    assert await updates.run_rollouts(ota.platform) == 8  # wave 2: 50 % of 20, cumulative
    assert (await state_of(ota, campaign.id)).wave == 1
    second = (await campaign_deliveries(ota, campaign.id))[2:]
    for delivery in second[:2]:
        await report(ota, delivery, "failed", reason="INSTALL_E42")
    assert await updates.run_rollouts(ota.platform) == 0
    paused = await state_of(ota, campaign.id)
    assert (paused.state, paused.paused_reason) == ("paused", "error_threshold")  # 2 of 10 = 20 %
    async with ota.db.transaction() as session:
        assert await updates.move(session, campaign.id, CampaignState.RUNNING) == []
    assert await updates.run_rollouts(ota.platform) == 0
    assert (await state_of(ota, campaign.id)).state == "running"  # failures before the resume do not count
    for delivery in second[:2]:  # the fix worked: the cars recover and install
        await report(ota, delivery, "installed")
    for delivery in second[2:]:
        await report(ota, delivery, "installed")
    assert await updates.run_rollouts(ota.platform) == 10  # the last wave: everyone left
    for delivery in (await campaign_deliveries(ota, campaign.id))[10:]:
        await report(ota, delivery, "installed")
    assert await updates.run_rollouts(ota.platform) == 0
    assert (await state_of(ota, campaign.id)).state == "running"  # the demo Macan's person has not said yes
    async with ota.db.session() as session:
        japan = await session.scalar(select(Account).where(Account.email == world.JAPAN_OWNER))
        demo_macan = await session.scalar(
            select(Vehicle).where(Vehicle.model_key == MACAN, Vehicle.vin.not_in([v.vin for v in ota.macans]))
        )
    assert japan is not None and demo_macan is not None
    async with ota.db.transaction() as session:
        await updates.set_consent(session, japan, demo_macan.vin, True)
    assert await updates.run_rollouts(ota.platform) == 1
    await report(ota, (await campaign_deliveries(ota, campaign.id))[-1], "installed")
    await updates.run_rollouts(ota.platform)
    done = await state_of(ota, campaign.id)
    assert done.state == "finished" and done.finished_at is not None
    async with ota.db.session() as session:
        ids = [v.id for v in ota.macans]
        versions = set(await session.scalars(select(Vehicle.software_version).where(Vehicle.id.in_(ids))))
        assert await updates.counts(session, campaign.id) == {"installed": 21}
    assert versions == {"2.0.0"}  # and so no longer in the campaign's range


async def test_cancelling_withdraws_updates_not_yet_installing(ota: World) -> None:
    await consent_all(ota, ota.macans[:4])
    campaign = await create(ota, plan(waves=[100]))
    await updates.run_rollouts(ota.platform)
    offered = await campaign_deliveries(ota, campaign.id)
    await report(ota, offered[0], "downloaded")
    await report(ota, offered[1], "installing")  # downloaded -> installing needs the download first
    await report(ota, offered[2], "downloaded")
    await report(ota, offered[2], "installing")
    async with ota.db.transaction() as session:
        changed = await updates.move(session, campaign.id, CampaignState.CANCELLED)
        with pytest.raises(CarlinkError) as refused:
            await updates.move(session, campaign.id, CampaignState.RUNNING)
    assert refused.value.code == "campaign_state"
    assert sorted(changed) == sorted(d.vehicle_id for d in (offered[0], offered[1], offered[3]))
    states = [d.state for d in await campaign_deliveries(ota, campaign.id)]
    assert states == ["cancelled", "cancelled", "installing", "cancelled"]
    assert await report(ota, offered[0], "installed") == "cancelled"  # a late report changes nothing


async def test_switching_updates_off_withdraws_the_cars_pending_update(ota: World) -> None:
    car = ota.macans[0]
    await consent_all(ota, [car])
    campaign = await create(ota, plan(waves=[100]))
    await updates.run_rollouts(ota.platform)
    [offered] = await campaign_deliveries(ota, campaign.id)
    await report(ota, offered, "failed", reason="battery_low")  # it would retry after its recovery
    async with ota.db.transaction() as session:
        changed = await updates.set_consent(session, ota.fleet, car.vin, False)
        assert await updates.set_consent(session, ota.fleet, car.vin, False) == []  # no second row
    assert changed == [car.id]
    [delivery] = await campaign_deliveries(ota, campaign.id)
    assert (delivery.state, delivery.reason) == ("cancelled", "updates_switched_off")
    assert await updates.run_rollouts(ota.platform) == 0
    await consent_all(ota, [car])  # on again: the update comes back
    assert await updates.run_rollouts(ota.platform) == 1
    [again] = await campaign_deliveries(ota, campaign.id)
    assert (again.id, again.state, again.reason) == (delivery.id, "offered", None)


async def test_reports_move_a_delivery_only_forward_and_only_as_its_kind_allows(ota: World) -> None:
    await consent_all(ota, ota.macans[:1])
    campaign = await create(ota, plan(waves=[100]))
    await updates.run_rollouts(ota.platform)
    [delivery] = await campaign_deliveries(ota, campaign.id)
    assert await report(ota, delivery, "activated") == "offered"  # only functions are activated
    assert await report(ota, delivery, "installing") == "offered"  # not before the download
    assert await report(ota, delivery, "failed", reason="hash_mismatch") == "failed"
    assert await report(ota, delivery, "downloaded") == "downloaded"  # it recovered
    assert await report(ota, delivery, "installed", version="2.0.0") == "installed"
    assert await report(ota, delivery, "failed", reason="late") == "installed"
    async with ota.db.session() as session:
        row = await session.get(Delivery, delivery.id)
        assert row is not None and row.failures == 1


async def test_only_the_main_user_switches_updates_and_strangers_learn_nothing(ota: World) -> None:
    async with ota.db.session() as session:
        family = await session.scalar(select(Account).where(Account.email == world.FAMILY))
        stranger = await session.scalar(select(Account).where(Account.email == world.STRANGER))
        taycan = await session.scalar(select(Vehicle).where(Vehicle.model_key == "taycan-1"))
    assert family is not None and stranger is not None and taycan is not None
    for who, code in ((family, "owner_only"), (stranger, "vehicle_not_found")):
        with pytest.raises(CarlinkError) as refused:
            async with ota.db.transaction() as session:
                await updates.set_consent(session, who, world.DEMO_CARS[0].vin, True)
        assert refused.value.code == code
