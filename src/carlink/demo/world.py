"""The demo world: the same people, cars, VINs and pairing codes on every run (README, 'Demo world')."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.demo import world_aftersales, world_sales
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.identity import service as identity
from carlink.identity.models import Account
from carlink.partners.models import Partner, PartnerStaff
from carlink.protocol.vin import make_vin

PASSWORD = "carlink-demo"
PIN = "1234"
OWNER = "owner@example.com"
FAMILY = "family@example.com"
STRANGER = "stranger@example.com"
FLEET_OWNER = "fleet@example.com"
# A person in Japan, so the demo shows a second country's store: yen, JCB and Diners, Carrier Connect.
JAPAN_OWNER = "hanako@example.com"
# Staff: two dealers in Germany (the second serves none of the demo cars), one in Japan, an operator and
# an operator of the security operations centre (SEC-1).
DEALER = "dealer@example.com"
OTHER_DEALER = "dealer.berlin@example.com"
JAPAN_DEALER = "dealer.yokohama@example.com"
OPERATOR = "operator@example.com"
SOC_OPERATOR = "soc@example.com"


@dataclass(frozen=True)
class DemoPartner:
    code: str
    name: str
    country: str
    city: str
    street: str
    postcode: str
    phone: str
    email: str
    staff: tuple[tuple[str, str, str, str], ...]  # name, title, email, phone
    login: str  # the dealer console ID of this partner


DEMO_PARTNERS = (
    DemoPartner(
        "DE-STR-01",
        "Autohaus Example Stuttgart",
        "DE",
        "Stuttgart",
        "Beispielweg 12",
        "70173",
        "+49 711 555 0100",
        "service.stuttgart@example.com",
        (
            ("Mia Beispiel", "Service advisor", "mia.beispiel@example.com", "+49 711 555 0101"),
            ("Jonas Muster", "Sales consultant", "jonas.muster@example.com", "+49 711 555 0102"),
        ),
        DEALER,
    ),
    DemoPartner(
        "DE-BER-01",
        "Autohaus Muster Berlin",
        "DE",
        "Berlin",
        "Musterallee 3",
        "10115",
        "+49 30 555 0200",
        "service.berlin@example.com",
        (("Lea Probe", "Service advisor", "lea.probe@example.com", "+49 30 555 0201"),),
        OTHER_DEALER,
    ),
    DemoPartner(
        "JP-YOK-01",
        "Example Motors Yokohama",
        "JP",
        "Yokohama",
        "Minato-Mirai 1-2-3",
        "220-0012",
        "+81 45 555 0300",
        "service.yokohama@example.com",
        (("Taro Yamada", "Service advisor", "taro.yamada@example.com", "+81 45 555 0301"),),
        JAPAN_DEALER,
    ),
)


@dataclass(frozen=True)
class DemoCar:
    vin: str
    model_key: str
    variant_code: str
    year: int
    name: str
    color: str
    color_hex: str
    paired: bool
    owner: str = OWNER
    country: str = "DE"


DEMO_CARS = (
    DemoCar(
        make_vin("WP0", "ZZZY1", "P", "S", 100001),
        "taycan-1",
        "Y1ADB1",
        2023,
        "",
        "Frozen Blue",
        "7a9fc0",
        True,
    ),
    DemoCar(
        make_vin("WP0", "ZZZ97", "J", "S", 200002),
        "panamera-2",
        "971AE1",
        2018,
        "",
        "Carrara White",
        "f2f2ee",
        True,
    ),
    DemoCar(
        make_vin("WP0", "ZZZ99", "G", "S", 300003), "911-7", "991110", 2016, "", "Guards Red", "c0141c", False
    ),
)
JAPAN_CAR = DemoCar(
    make_vin("WP0", "ZZZ95", "M", "S", 400004),
    "macan-2",
    "95BBA1",
    2021,
    "",
    "Gentian Blue",
    "1f3a5f",
    True,
    owner=JAPAN_OWNER,
    country="JP",
)
SIM_VARIANTS = (
    ("taycan-1", "Y1ADB1", 2022, "ZZZY1", "N"),
    ("cayenne-3", "9YAAE1", 2020, "ZZZ9Y", "L"),
    ("macan-2", "95BBA1", 2019, "ZZZ95", "K"),
)


def demo_pairing_code(vin: str, email: str) -> str:
    digest = hashlib.sha256(f"{vin}:{email}".encode()).hexdigest()
    return f"{int(digest, 16) % 10**8:08d}"


async def _account(
    session: AsyncSession, email: str, name: str, *, pin: str | None, country: str = "DE", locale: str = "en"
) -> Account:
    found = await identity.find_account(session, email)
    if found is not None:
        return found
    return await identity.create_account(
        session,
        email=email,
        password=PASSWORD,
        country=country,
        display_name=name,
        pin=pin,
        locale=locale,
        hashes=_demo_hashes(),
        email_verified=True,
    )


@functools.cache
def _demo_hashes() -> tuple[str, str]:
    """The demo IDs share password and PIN: hash them once, not once per ID (argon2 is slow on purpose)."""
    return identity.hash_secret(PASSWORD), identity.hash_secret(PIN)


async def seed(session: AsyncSession) -> list[DemoCar]:
    """Creates the demo world unless it is there already."""
    owner = await _account(session, OWNER, "Alex Example", pin=PIN)
    family = await _account(session, FAMILY, "Sam Example", pin=PIN)
    await _account(session, STRANGER, "Robin Stranger", pin=None)
    owners = {
        OWNER: owner,
        JAPAN_OWNER: await _account(
            session, JAPAN_OWNER, "Hanako Example", pin=PIN, country="JP", locale="ja"
        ),
    }
    for car in (*DEMO_CARS, JAPAN_CAR):
        vehicle = await garage.vehicle_by_vin(session, car.vin)
        if vehicle is None:
            vehicle = await garage.register_vehicle(
                session,
                vin=car.vin,
                model_key=car.model_key,
                variant_code=car.variant_code,
                model_year=car.year,
                color=car.color,
                color_hex=car.color_hex,
                custom_name=car.name,
                country=car.country,
            )
        main = await garage.assign_user(
            session,
            vehicle,
            owners[car.owner],
            garage.MAIN,
            pairing_code=demo_pairing_code(car.vin, car.owner),
        )
        if car.paired and main.paired_at is None:
            main.paired_at = utcnow()
    taycan = await garage.vehicle_by_vin(session, DEMO_CARS[0].vin)
    assert taycan is not None
    await garage.assign_user(
        session, taycan, family, garage.SECONDARY, pairing_code=demo_pairing_code(taycan.vin, FAMILY)
    )
    await _seed_partners(session)
    await world_sales.seed(session)
    await world_aftersales.seed(session)
    return [*DEMO_CARS, JAPAN_CAR]


async def _seed_partners(session: AsyncSession) -> dict[str, Partner]:
    """The demo dealers with their staff and console logins, and an operator."""
    partners = {}
    for demo in DEMO_PARTNERS:
        partner = await session.scalar(select(Partner).where(Partner.code == demo.code))
        if partner is None:
            partner = Partner(
                code=demo.code,
                name=demo.name,
                country=demo.country,
                city=demo.city,
                street=demo.street,
                postcode=demo.postcode,
                phone=demo.phone,
                email=demo.email,
            )
            session.add(partner)
            await session.flush()
            for name, title, email, phone in demo.staff:
                session.add(
                    PartnerStaff(partner_id=partner.id, name=name, title=title, email=email, phone=phone)
                )
        partners[demo.code] = partner
        login = await _account(session, demo.login, f"{demo.name} (console)", pin=None, country=demo.country)
        await identity.grant_staff_role(session, login, identity.DEALER, partner_id=partner.id)
    operator = await _account(session, OPERATOR, "Olga Operator", pin=None)
    await identity.grant_staff_role(session, operator, identity.OPERATOR)
    soc = await _account(session, SOC_OPERATOR, "Sam SOC", pin=None)
    await identity.grant_staff_role(session, soc, identity.SOC)
    return partners


async def ensure_sim_fleet(session: AsyncSession, count: int, *, first_serial: int = 500000) -> list[str]:
    """`count` extra cars owned by fleet@example.com, for `carlink sim` and the benchmarks."""
    owner = await _account(session, FLEET_OWNER, "Fleet Example", pin=PIN)
    vins = []
    existing = set(await session.scalars(select(Vehicle.vin).where(Vehicle.vin.like("WP0%"))))
    for index in range(count):
        model_key, variant, year, descriptor, year_code = SIM_VARIANTS[index % len(SIM_VARIANTS)]
        vin = make_vin("WP0", descriptor, year_code, "F", first_serial + index)
        vins.append(vin)
        if vin in existing:
            continue
        vehicle = await garage.register_vehicle(
            session, vin=vin, model_key=model_key, variant_code=variant, model_year=year
        )
        await garage.assign_user(session, vehicle, owner, garage.MAIN)
    return vins
