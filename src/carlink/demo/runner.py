"""Runs the whole demo in one process: embedded broker, service (all roles) and the simulated fleet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from carlink.app import create_app
from carlink.db.base import Database
from carlink.db.migrate import upgrade
from carlink.demo import world
from carlink.demo.console import DemoCars, console_router
from carlink.demo.mailbox import MailSink, mailbox_router
from carlink.demo.world_updates import ensure_demo_update
from carlink.gateway.embedded import EmbeddedBroker
from carlink.gateway.provisioning import fleet_manifest
from carlink.platform import Platform
from carlink.server import server as http_server
from carlink.settings import Settings
from carlink.sim.fleet import Fleet, Manifest

DEMO_SECRET = "carlink-demo-secret-not-for-production"


@dataclass
class DemoOptions:
    port: int = 8080
    host: str = "127.0.0.1"
    mqtt_port: int = 0
    data_dir: Path = Path(".carlink-demo")
    extra_vehicles: int = 0
    keep: bool = False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def run_demo(options: DemoOptions, console: Console) -> None:
    if not port_is_free(options.host, options.port):
        raise SystemExit(f"port {options.port} is in use; start the demo on another one with --port")
    if options.data_dir.exists() and not options.keep:
        shutil.rmtree(options.data_dir)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite+aiosqlite:///{(options.data_dir / 'carlink.db').resolve()}"
    broker = EmbeddedBroker(secret=DEMO_SECRET, prefix="carlink", port=options.mqtt_port)
    await broker.start()
    mail_sink = MailSink(options.data_dir / "mail")
    await mail_sink.start()
    settings = Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        base_url=f"http://{options.host}:{options.port}",
        secret_key=DEMO_SECRET,
        smtp_url=f"smtp://127.0.0.1:{mail_sink.port}",
        package_dir=str((options.data_dir / "packages").resolve()),
    )
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    async with db.transaction() as session:
        cars = await world.seed(session)
        vins = [car.vin for car in cars] + await world.ensure_sim_fleet(session, options.extra_vehicles)
        await ensure_demo_update(session, settings, world.OPERATOR)
    platform = Platform(settings=settings, db=db)
    app = create_app(settings, platform=platform, migrate=False)
    demo_cars = DemoCars()
    app.include_router(console_router(demo_cars))
    app.include_router(mailbox_router(mail_sink))
    server = http_server(app, host=options.host, port=options.port)
    fleet: Fleet | None = None

    async def bring_up_fleet() -> None:
        nonlocal fleet
        while not server.started:
            await asyncio.sleep(0.05)
        async with db.transaction() as session:
            manifest = Manifest.from_json(
                await fleet_manifest(session, settings, broker_url=broker.url, vins=vins)
            )
        fleet = Fleet(manifest, report_interval=60.0)
        await fleet.start()
        demo_cars.fleet = fleet
        _print_welcome(console, settings, broker, cars, len(vins))

    starter = asyncio.create_task(bring_up_fleet())
    try:
        await server.serve()
    finally:
        starter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starter
        if fleet is not None:
            await fleet.stop()
        await broker.stop()
        await mail_sink.stop()
        console.print("carlink demo stopped.")


def _print_welcome(
    console: Console, settings: Settings, broker: EmbeddedBroker, cars: list[world.DemoCar], fleet_size: int
) -> None:
    base = settings.base_url
    console.print(f"\n[bold]carlink demo[/bold] is running at {base}/")
    console.print(f"  portal          {base}/")
    console.print(f"  dealer console  {base}/dealer")
    console.print(f"  operator        {base}/operator")
    console.print(f"  API docs        {base}/docs")
    console.print(f"  OIDC discovery  {base}/.well-known/openid-configuration")
    console.print(f"  car console     {base}/demo/cars  (act in the simulated cars)")
    console.print(f"  mailbox         {base}/demo/mailbox  (mails the demo sends)")
    console.print(f"  MQTT broker     {broker.url} (embedded)")
    table = Table(title="Demo logins (password carlink-demo)")
    for column in ("ID", "role", "security PIN"):
        table.add_column(column)
    table.add_row(world.OWNER, "main user of the Taycan, Panamera and 911 (Germany)", world.PIN)
    table.add_row(world.FAMILY, "secondary user of the Taycan", world.PIN)
    table.add_row(world.JAPAN_OWNER, "main user of the Macan (Japan: yen, JCB)", world.PIN)
    table.add_row(world.STRANGER, "no vehicles", "-")
    table.add_row(world.DEALER, "dealer console of Autohaus Example Stuttgart (sold the German cars)", "-")
    table.add_row(world.OTHER_DEALER, "dealer console of Autohaus Muster Berlin (serves none of them)", "-")
    table.add_row(world.JAPAN_DEALER, "dealer console of Example Motors Yokohama (sold the Macan)", "-")
    table.add_row(world.OPERATOR, "operator console", "-")
    table.add_row(world.SOC_OPERATOR, "SOC console (live alarm queue, cases, welcome calls)", "-")
    console.print(table)
    cars_table = Table(title=f"Demo cars ({fleet_size} simulated cars online)")
    for column in ("VIN", "model", "year", "country", "owner's pairing code"):
        cars_table.add_column(column)
    for car in cars:
        code = world.demo_pairing_code(car.vin, car.owner)
        cars_table.add_row(car.vin, car.variant_code, str(car.year), car.country, code)
    console.print(cars_table)
    console.print(
        "Store test cards (sandbox, any future expiry and CVC): 4242 4242 4242 4242 pays; "
        "4000 0000 0000 3220 asks for the code 123456; 4000 0000 0000 0002 is declined; "
        "JCB 3530 1113 3330 0000 (Japan)."
    )
    console.print("Stop with Ctrl-C.\n")
    console.file.flush()  # also when the output goes to a pipe


logging.getLogger("amqtt").setLevel(logging.ERROR)
