"""The `carlink` command: demo, serve, sim, db, broker, catalog."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from carlink.fod.cli import packages_app
from carlink.privacy.cli import countries_app
from carlink.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

app = typer.Typer(help="carlink: the cloud behind a car maker's connect offer.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
broker_app = typer.Typer(help="MQTT broker configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
catalog_app = typer.Typer(
    help="The store's catalogue: offers, prices, terms (STO-1, STO-6).", no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(countries_app, name="countries")
app.add_typer(packages_app, name="packages")
console = Console()


def _logging(settings: Settings) -> None:
    from carlink.logs import configure

    configure(settings.log_level, as_json=settings.log_json)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="HTTP port of the service")] = 8080,
    mqtt_port: Annotated[int, typer.Option(help="port of the embedded broker; 0 picks a free one")] = 0,
    vehicles: Annotated[int, typer.Option(help="extra simulated cars besides the demo world's")] = 0,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its SQLite database")] = Path(
        ".carlink-demo"
    ),
    keep: Annotated[
        bool, typer.Option(help="keep the data of the last run instead of starting fresh")
    ] = False,
) -> None:
    """Start the demo: SQLite, embedded broker, the service and a simulated fleet. Needs nothing installed."""
    from carlink.demo.runner import DemoOptions, run_demo

    _logging(Settings(log_level="WARNING"))
    options = DemoOptions(
        port=port, mqtt_port=mqtt_port, data_dir=data_dir, extra_vehicles=vehicles, keep=keep
    )
    asyncio.run(run_demo(options, console))


@app.command()
def serve(
    role: Annotated[
        list[str] | None, typer.Option(help="api, gateway or jobs; repeat for several; default all")
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    migrate: Annotated[bool, typer.Option(help="apply database migrations at start")] = True,
) -> None:
    """Run the service against the configured database and broker (CARLINK_DATABASE_URL, CARLINK_MQTT_URL)."""
    from carlink.app import create_app
    from carlink.platform import ROLES

    settings = get_settings()
    _logging(settings)
    roles = frozenset(role or ROLES)
    unknown = roles - ROLES
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(sorted(unknown))}")
    from carlink.server import server

    asyncio.run(server(create_app(settings, roles=roles, migrate=migrate), host=host, port=port).serve())


@app.command()
def sim(
    vehicles: Annotated[int, typer.Option(help="number of simulated cars")] = 10,
    manifest: Annotated[
        Path | None, typer.Option(help="fleet manifest JSON; default: provision from the DB")
    ] = None,
    broker_url: Annotated[
        str | None, typer.Option(help="broker URL the cars use; default from settings")
    ] = None,
    write_manifest: Annotated[Path | None, typer.Option(help="only write the manifest to this file")] = None,
) -> None:
    """Run N simulated cars against any broker until Ctrl-C."""
    settings = get_settings()
    _logging(settings)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the cars say goodbye, then a plain exit
        asyncio.run(_sim(settings, vehicles, manifest, broker_url, write_manifest))


async def _sim(
    settings: Settings, count: int, manifest_path: Path | None, broker_url: str | None, write_to: Path | None
) -> None:
    from carlink.sim.fleet import Fleet, Manifest

    if manifest_path is not None:
        manifest = await asyncio.to_thread(Manifest.load, manifest_path)
    else:
        manifest = Manifest.from_json(await provision(settings, count, broker_url))
    if write_to is not None:
        await asyncio.to_thread(write_to.write_text, json.dumps(manifest.to_json(), indent=2))
        console.print(f"wrote a manifest of {len(manifest.cars)} cars to {write_to}")
        return
    fleet = Fleet(manifest)
    try:  # a Ctrl-C while the cars connect stops those already online too
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("connecting cars", total=len(manifest.cars))
            await fleet.start(progress=lambda n: progress.advance(task, n))
        console.print(
            f"{len(manifest.cars)} simulated cars online at {manifest.broker_url}; Ctrl-C stops them."
        )
        await asyncio.Event().wait()
    finally:
        await fleet.stop()


async def provision(settings: Settings, count: int, broker_url: str | None) -> dict[str, object]:
    """Registers `count` fleet cars in the database (idempotent) and returns their manifest."""
    from carlink.db.base import Database
    from carlink.db.migrate import upgrade
    from carlink.demo.world import ensure_sim_fleet
    from carlink.gateway.provisioning import fleet_manifest
    from carlink.protocol.transport import BrokerAddress
    from carlink.remote.service import CommandSigner

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            await CommandSigner().load(session)
            vins = await ensure_sim_fleet(session, count)
        if broker_url is None:
            address = BrokerAddress.parse(settings.mqtt_url)
            broker_url = f"{'mqtts' if address.tls else 'mqtt'}://{address.host}:{address.port}"
        async with db.transaction() as session:
            return await fleet_manifest(session, settings, broker_url=broker_url, vins=vins)
    finally:
        await db.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the Alembic migrations to the configured database."""
    from carlink.db.migrate import upgrade_sync

    settings = get_settings()
    upgrade_sync(settings.database_url, revision)
    console.print(f"database at {revision}")


@broker_app.command("mosquitto-config")
def mosquitto_config(
    directory: Path,
    port: Annotated[int, typer.Option()] = 1883,
) -> None:
    """Write mosquitto.conf, passwd and acl for the vehicles in the database (per-car accounts and ACL)."""
    from sqlalchemy import select

    from carlink.db.base import Database
    from carlink.garage.models import Vehicle
    from carlink.gateway.mosquitto import write_config

    settings = get_settings()

    async def vins() -> list[str]:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                return list(await session.scalars(select(Vehicle.vin)))
        finally:
            await db.dispose()

    found = asyncio.run(vins())
    conf = write_config(
        directory, secret=settings.secret_key, prefix=settings.mqtt_topic_prefix, vins=found, port=port
    )
    console.print(f"wrote {conf} with {len(found)} car accounts")


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Runs one unit of work against the configured database (migrated first, catalogue seeded)."""
    from carlink.catalog.seed import ensure_catalogue
    from carlink.db.migrate import run_migrated

    return run_migrated(get_settings().database_url, work, ensure_catalogue)


@catalog_app.command("list")
def catalog_list(
    country: Annotated[str, typer.Option(help="ISO 3166 country code")] = "DE",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """The offers in force in one country, with their ids, terms and prices."""
    from rich.table import Table

    from carlink.catalog import service as catalog
    from carlink.catalog.money import format_money

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        rows = []
        for item in await catalog.services_for(session, country=country.upper()):
            for offer in item.offers:
                rows.append(
                    {
                        "offer_id": offer.id,
                        "service": item.service.code,
                        "term": offer.term,
                        "price_minor": offer.price_minor,
                        "currency": offer.currency,
                        "version": offer.version,
                    }
                )
        return rows

    rows = _in_transaction(work)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"Offers in {country.upper()}")
    for column in ("offer", "service", "term", "price", "version"):
        table.add_column(column)
    for row in rows:
        price = format_money(int(str(row["price_minor"])), str(row["currency"]))
        table.add_row(str(row["offer_id"]), str(row["service"]), str(row["term"]), price, str(row["version"]))
    console.print(table)


@catalog_app.command("set-price")
def catalog_set_price(
    offer_id: Annotated[int, typer.Argument(help="the offer's id (see `carlink catalog list`)")],
    price_minor: Annotated[int, typer.Argument(help="the new price in minor units (cents; whole yen)")],
) -> None:
    """A new price: the offer is retired and its next version added. Existing contracts keep theirs."""
    from carlink.catalog import service as catalog
    from carlink.errors import CarlinkError

    async def work(session: AsyncSession) -> tuple[int, int]:
        offer = await catalog.revise_offer(session, offer_id, price_minor=price_minor)
        return offer.id, offer.version

    try:
        new_id, version = _in_transaction(work)
    except (ValueError, CarlinkError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"offer {offer_id} retired; offer {new_id} (version {version}) is in force")


@catalog_app.command("publish-terms")
def catalog_publish_terms(
    document: Annotated[str, typer.Argument(help='"general" or a service code')],
    language: Annotated[str, typer.Argument(help="en, de or ja")],
    text_file: Annotated[Path, typer.Argument(help="the full text, UTF-8")],
    title: Annotated[str, typer.Option(help="the title shown above the text")],
) -> None:
    """Publish the next version of a terms document; earlier versions stay readable for their contracts."""
    from carlink.catalog import service as catalog

    body = text_file.read_text(encoding="utf-8")

    async def work(session: AsyncSession) -> int:
        row = await catalog.publish_terms(session, document, language, title=title, body=body)
        return row.version

    console.print(f"{document} ({language}) version {_in_transaction(work)} published")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
