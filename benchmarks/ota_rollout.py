"""Software update rollout: offering one update to N cars at once, and serving its package to them.

    python benchmarks/ota_rollout.py --vehicles 10000 --broker mosquitto
    python benchmarks/ota_rollout.py --vehicles 1000 --downloads 128 --concurrency 16

Two measurements in one run (carlink issue 6):
  offer       every car of one model has switched updates on; an operator creates a campaign with one wave of
              100 % (`POST /api/v1/operator/campaigns`); timed from just before the POST until every car's
              signed `Deliveries` message has come out of the broker (offer_all_s, offered)
  throughput  the package endpoint (`GET /api/v1/packages/files/{name}`, HTTP Basic as fleet cars) against a
              plain static file server (Python's http.server) serving the same bytes from a temporary
              directory, at the same concurrency, in alternating blocks (package_mb_s, static_mb_s,
              ratio_throughput = package_mb_s / static_mb_s); plus one resumed download (Range) and sha256
              checks of a sample of downloads (corrupt must be 0)
The last line on stdout is one JSON object; progress and a summary go to stderr. benchmarks/README.md explains
what is measured and the results.

Processes: the service and the fleet (the cars), both as remote_commands.py runs them (the service with the
embedded broker when that is the broker); the observer (one MQTT client that records when each car's
Deliveries message arrives, alone so that the cars' work cannot delay it); the static file server; and this
one (set-up, sign-in, HTTP load generator, report). The helpers are remote_commands.py's. Everything listens
on 127.0.0.1 only; every phase is bounded in count and in time; processes, temporary files and the
PostgreSQL database are cleaned up on success, error, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import platform as host
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import remote_commands as rc  # benchmarks/ is on sys.path when a script in it runs
from rich.table import Table

SCRIPT = Path(__file__).resolve()
PROJECT = SCRIPT.parents[1]
PREFIX = rc.PREFIX
PACKAGE = "bench-ota-2.0.0.bin"
# All fleet cars are made this model (ensure_sim_fleet mixes three), so one campaign targets them all.
MODEL_KEY, VARIANT, MODEL_YEAR = "taycan-1", "Y1ADB1", 2022
FROM_VERSION, BELOW_VERSION, TO_VERSION = "1.0.0", "2.0.0", "2.0.0"
# Every VERIFY_EVERY-th download of each kind is hashed in full; every download's length is checked.
VERIFY_EVERY = 4
MAX_DOWNLOADS = 10_000
MAX_CONCURRENCY = 256
MAX_PACKAGE_MB = 1024
# The client drops a connection idle this long, before uvicorn closes it as idle (5 s; see README).
CLIENT_KEEPALIVE_S = 3.0
STATIC_SERVER = "Python http.server: ThreadingHTTPServer + SimpleHTTPRequestHandler (stdlib), HTTP/1.0"
console = rc.console


# --- command line -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/ota_rollout.py",
        description=(
            "Offer one software update to N consented cars (POST /api/v1/operator/campaigns, one wave of "
            "100 %%) and time until every car's Deliveries message arrived; then the package endpoint's "
            "download throughput against a plain static file server. The last line of stdout is one JSON "
            "object."
        ),
        epilog="Defaults are `carlink demo`'s set-up: SQLite and the embedded broker (benchmarks/README.md).",
    )
    parser.add_argument("--vehicles", type=int, default=1000, help="fleet cars offered the update (1000)")
    parser.add_argument(
        "--package-mb", type=float, default=8.0, help="size of the package in MiB (default 8)"
    )
    parser.add_argument(
        "--downloads", type=int, default=128, help="downloads to time of each kind, package and static (128)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="downloads in flight at once, for both kinds (16)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="alternate package and static blocks this many times, so both see the same load (4)",
    )
    rc.add_stack_options(parser)
    parser.add_argument(
        "--offer-timeout",
        type=float,
        default=300.0,
        help="seconds from the POST for every car's Deliveries message to arrive (default 300)",
    )
    parser.add_argument(
        "--measure-timeout",
        type=float,
        default=300.0,
        help="seconds for the timed downloads; what is done by then is reported (default 300)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is None:
        for name in ("vehicles", "downloads", "concurrency", "rounds"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be at least 1")
        if args.downloads > MAX_DOWNLOADS or args.concurrency > MAX_CONCURRENCY:
            parser.error(f"at most {MAX_DOWNLOADS} downloads and {MAX_CONCURRENCY} at once")
        if not 0 < args.package_mb <= MAX_PACKAGE_MB:
            parser.error(f"--package-mb must be above 0 and at most {MAX_PACKAGE_MB}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "observer":
        return asyncio.run(run_observer(json.loads(args.role_config)))
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:  # Ctrl-C: the clean-up has run; the contract still ends with a JSON line
        result = {"benchmark": "ota_rollout", "vehicles": args.vehicles, "error": "interrupted"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


# --- measurements -----------------------------------------------------------------------------------------


@dataclass
class Package:
    path: Path
    size: int
    sha256: str


@dataclass
class Downloads:
    """Downloads of one kind: bytes and time of the blocks, and what went wrong."""

    done: int = 0
    bytes: int = 0
    seconds: float = 0.0
    verified: int = 0
    corrupt: int = 0
    cpu_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def mb_s(self) -> float | None:
        return round(self.bytes / 2**20 / self.seconds, 1) if self.seconds and self.bytes else None


class Downloader:
    """A car's view of the package endpoint (HTTP Basic with its VIN and broker password), and the same
    file from the static server."""

    def __init__(self, http: httpx.AsyncClient, package: Package, secret: str, vins: list[str]) -> None:
        from carlink.gateway.credentials import car_password

        self.http = http
        self.package = package
        self.auth = [
            "Basic " + base64.b64encode(f"{vin}:{car_password(secret, vin)}".encode()).decode()
            for vin in vins
        ]

    def car_headers(self, index: int) -> dict[str, str]:
        return {"Authorization": self.auth[index % len(self.auth)]}

    async def fetch(self, url: str, headers: dict[str, str], verify: bool, tally: Downloads) -> None:
        digest = hashlib.sha256() if verify else None
        length = 0
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    tally.errors[f"http {response.status_code}"] += 1
                    return
                async for chunk in response.aiter_raw():
                    length += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            return
        tally.done += 1
        tally.bytes += length
        if length != self.package.size:
            tally.corrupt += 1
        elif digest is not None:
            tally.verified += 1
            tally.corrupt += digest.hexdigest() != self.package.sha256

    async def resumed(self, url: str) -> dict[str, Any]:
        """A car that lost its connection halfway: the first half, then `Range: bytes=<have>-` for the rest;
        the two parts together must be the file."""
        half = self.package.size // 2
        headers = self.car_headers(0)
        first = bytearray()
        async with self.http.stream("GET", url, headers=headers) as response:
            async for chunk in response.aiter_raw():
                first += chunk
                if len(first) >= half:
                    break
        have = len(first)
        response = await self.http.get(url, headers={**headers, "Range": f"bytes={have}-"})
        whole = hashlib.sha256(bytes(first) + response.content).hexdigest()
        return {
            "range_status": response.status_code,
            "range_content_range": response.headers.get("content-range"),
            "range_resume_ok": response.status_code == 206 and whole == self.package.sha256,
        }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process from /proc (Linux); 0 when unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


async def measure_throughput(
    args: argparse.Namespace,
    loader: Downloader,
    urls: dict[str, str],
    pids: dict[str, int | None],
    phase: rc.Phase,
) -> dict[str, Downloads]:
    """Warm-up, then alternating blocks of package and static downloads (the order swaps each round)."""
    loop = asyncio.get_running_loop()
    tallies = {"package": Downloads(), "static": Downloads()}
    numbers = itertools.count()

    def one(kind: str, tally: Downloads) -> Any:
        def start(index: int) -> Any:
            headers = loader.car_headers(next(numbers)) if kind == "package" else {}
            return loader.fetch(urls[kind], headers, index % VERIFY_EVERY == 0, tally)

        return start

    warm = {"package": Downloads(), "static": Downloads()}
    with phase.bar("warm-up downloads", 2 * args.concurrency) as advance:
        for kind in ("package", "static"):
            await rc.run_bounded(
                args.concurrency, args.concurrency, loop.time() + 120, one(kind, warm[kind]), advance
            )
    for kind, tally in warm.items():
        if not tally.done:
            raise rc.SetupFailed(
                f"no warm-up download from the {kind} server succeeded: {dict(tally.errors)}"
            )
    rounds = min(args.rounds, args.downloads)
    deadline = loop.time() + args.measure_timeout
    cut = False
    with phase.bar(f"package and static downloads, {rounds} rounds", 2 * args.downloads) as advance:
        for block in range(rounds):
            size = args.downloads // rounds + (1 if block < args.downloads % rounds else 0)
            for kind in ("package", "static") if block % 2 == 0 else ("static", "package"):
                tally = tallies[kind]
                cpu = cpu_seconds(pids[kind])
                began = time.perf_counter()
                cut |= await rc.run_bounded(size, args.concurrency, deadline, one(kind, tally), advance)
                tally.seconds += time.perf_counter() - began
                tally.cpu_s += cpu_seconds(pids[kind]) - cpu
    tallies["package"].errors["time_limited"] += cut
    return tallies


@dataclass
class Offers:
    """What the observer saw: the first arrival per car (wall clock), and all Deliveries messages."""

    times: list[float] = field(default_factory=list)
    messages: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)


async def observe_offers(observer: rc.Child, offers: Offers, vins: int) -> None:
    """Reads the observer's `received <wall clock> ...` and `messages <n>` lines until it exits."""
    assert observer.process.stdout is not None
    while line := await observer.process.stdout.readline():
        word, _, value = line.decode().strip().partition(" ")
        if word == "received":
            offers.times.extend(float(stamp) for stamp in value.split())
            if len(offers.times) >= vins:
                offers.all_in.set()
        elif word == "messages":
            offers.messages = int(value)


# --- the benchmark process --------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; a set-up failure still yields a JSON object, with `error`."""
    result: dict[str, Any] = {
        "benchmark": "ota_rollout",
        "vehicles": args.vehicles,
        "database": args.database,
        "broker": args.broker,
        "concurrency": args.concurrency,
        "downloads_requested": args.downloads,
        "package_mb": args.package_mb,
        # The contract's keys are always there; null when a failed set-up left nothing to measure.
        **dict.fromkeys(("offered", "offer_all_s", "package_mb_s", "static_mb_s", "ratio_throughput")),
    }
    await rc.run_phases(result, lambda phase: _run(args, result, phase))
    if "error" not in result:
        print_summary(result)
    return result


async def _run(args: argparse.Namespace, result: dict[str, Any], phase: rc.Phase) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-ota-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        package = write_package(workdir / "static", int(args.package_mb * 2**20))
        database_url = await rc.create_database(args.database, workdir, cleanup)
        with phase.bar(f"seeding {args.vehicles} consented fleet cars ({args.database})", None):
            seeded = time.monotonic()
            vins, manifest = await seed(database_url, secret, args.vehicles, package, workdir)
            result["seed_s"] = round(time.monotonic() - seeded, 1)
        broker_url, broker_pid, mosquitto_version = rc.start_broker(
            args.broker, workdir, secret, vins, cleanup
        )
        manifest["broker_url"] = broker_url
        manifest_path = workdir / "fleet.json"
        manifest_path.write_text(json.dumps(manifest))
        fleet_vins = [car["vin"] for car in manifest["cars"]]

        service, base_url = await rc.start_service(
            database_url,
            broker_url,
            secret,
            embedded=args.broker == "embedded",
            workdir=workdir,
            cleanup=cleanup,
        )
        static_port = rc.free_port()
        static = await start_static_server(workdir, static_port)
        cleanup.push_async_callback(static.stop)
        with phase.bar("starting the service and the static server", None):
            await rc.wait_ready(service, base_url, timeout=90)
            await wait_static(static, f"http://127.0.0.1:{static_port}/{PACKAGE}", timeout=30)

        # remote_commands.py's fleet process: the cars (its baseline responder stays idle here).
        fleet = await rc.start_child(
            "fleet",
            "fleet",
            {"manifest": str(manifest_path), "secret": secret, "timeout": args.connect_timeout},
            workdir,
            pipe=True,
        )
        cleanup.push_async_callback(fleet.stop)
        connected = time.monotonic()
        await rc.follow_fleet(fleet, len(fleet_vins), phase, args.connect_timeout)
        result["connect_s"] = round(time.monotonic() - connected, 1)
        # The cloud is done with every car's connection and first telemetry before the clock starts, so the
        # offer is timed alone.
        await rc.wait_online(database_url, fleet_vins, phase, deadline=connected + args.connect_timeout)
        result["online_s"] = round(time.monotonic() - connected, 1)

        offers = Offers()
        vins_path = workdir / "fleet-vins.json"
        vins_path.write_text(json.dumps(fleet_vins))
        observer = await start_observer(
            {"broker_url": broker_url, "secret": secret, "vins": str(vins_path)}, workdir
        )
        cleanup.push_async_callback(observer.stop)
        reader = asyncio.create_task(observe_offers(observer, offers, len(fleet_vins)))
        cleanup.push_async_callback(_cancel, reader)
        async with httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(60, read=300),  # the POST offers the whole fleet before it answers
            limits=httpx.Limits(max_connections=args.concurrency * 2, keepalive_expiry=CLIENT_KEEPALIVE_S),
        ) as http:
            from carlink.demo.world import OPERATOR, PASSWORD

            token = await rc.oidc_login(http, OPERATOR, PASSWORD)
            result.update(await offer(http, token, offers, len(fleet_vins), phase, args.offer_timeout))
            result["service_rss_after_offer_mb"] = round(rc.rss_kb(service.process.pid) / 1024, 1)

            loader = Downloader(http, package, secret, fleet_vins)
            urls = {
                "package": f"{base_url}/api/v1/packages/files/{PACKAGE}",
                "static": f"http://127.0.0.1:{static_port}/{PACKAGE}",
            }
            pids: dict[str, int | None] = {"package": service.process.pid, "static": static.process.pid}
            tallies = await measure_throughput(args, loader, urls, pids, phase)
            result.update(report_throughput(tallies))
            result.update(await loader.resumed(urls["package"]))
        result.update(
            package_bytes=package.size,
            static_server=STATIC_SERVER,
            service_rss_mb=round(rc.rss_kb(service.process.pid) / 1024, 1),
            broker_rss_mb=round(rc.rss_kb(broker_pid) / 1024, 1) if broker_pid else None,
            setup=describe_setup(args, mosquitto_version),
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            machine=f"{os.cpu_count()} cpu, {rc._memory_gib()} GiB, {host.system()} {host.release()}",
            python=host.python_version(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        for child in (service, fleet, observer, static):
            if child.process.returncode is not None:
                raise rc.SetupFailed(
                    f"the {child.name} process died ({child.process.returncode}):\n{child.tail()}"
                )


async def offer(
    http: httpx.AsyncClient,
    token: str,
    offers: Offers,
    vehicles: int,
    phase: rc.Phase,
    timeout: float,
) -> dict[str, Any]:
    """POST the campaign (one wave of 100 %: the whole fleet in the first rollout step) and wait until the
    observer has seen every car's Deliveries message. Times are wall clock: the fleet is another process."""
    body = {
        "name": f"bench {TO_VERSION}",
        "package": PACKAGE,
        "model_key": MODEL_KEY,
        "variants": [],
        "version_from": FROM_VERSION,
        "version_below": BELOW_VERSION,
        "to_version": TO_VERSION,
        "waves": [100],
        "success_threshold": 100,
        "error_threshold": 100,
    }
    times, all_in = offers.times, offers.all_in
    with phase.bar(f"offering the update to {vehicles} cars", vehicles) as advance:
        posted = time.time()
        try:
            response = await http.post(
                "/api/v1/operator/campaigns", json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise rc.SetupFailed(
                f"POST /api/v1/operator/campaigns failed: {type(exc).__name__} {exc}"
            ) from exc
        answered = time.time()
        if response.status_code != 201:
            raise rc.SetupFailed(
                f"POST /api/v1/operator/campaigns: {response.status_code} {response.text[:500]}"
            )
        seen = 0
        deadline = time.monotonic() + timeout
        while not all_in.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 0.25)
            advance(len(times) - seen)
            seen = len(times)
        advance(len(times) - seen)
    await asyncio.sleep(2)  # untimed: late and repeated messages still count in offer_messages
    created = response.json()
    delays = [stamp - posted for stamp in times]
    complete = len(times) >= vehicles
    return {
        "offered": len(times),
        "offer_all_s": round(max(delays), 3) if complete else None,
        "offer_time_limited": not complete,
        "offer_p50_s": _round(rc.percentile(delays, 0.50)),
        "offer_p99_s": _round(rc.percentile(delays, 0.99)),
        "offer_first_s": _round(min(delays, default=None)),
        "offer_post_s": round(answered - posted, 3),
        # Deliveries messages for the fleet's cars while timing; more than `offered`: some went out twice.
        "offer_messages": offers.messages,
        "campaign_matching": created.get("matching"),
        "campaign_consented": created.get("consented"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report_throughput(tallies: dict[str, Downloads]) -> dict[str, Any]:
    package, static = tallies["package"], tallies["static"]
    package_mb_s, static_mb_s = package.mb_s(), static.mb_s()
    errors = package.errors + static.errors
    time_limited = bool(errors.pop("time_limited", 0))
    return {
        "package_mb_s": package_mb_s,
        "static_mb_s": static_mb_s,
        "ratio_throughput": round(package_mb_s / static_mb_s, 3) if package_mb_s and static_mb_s else None,
        "package_downloads": package.done,
        "static_downloads": static.done,
        "verified": package.verified + static.verified,
        "corrupt": package.corrupt + static.corrupt,
        "download_errors": sum(errors.values()),
        "error_kinds": dict(errors),
        # CPU seconds per GiB served, of the service process and of the static server.
        "package_cpu_s_per_gib": round(package.cpu_s / (package.bytes / 2**30), 2) if package.bytes else None,
        "static_cpu_s_per_gib": round(static.cpu_s / (static.bytes / 2**30), 2) if static.bytes else None,
        "measure_s": round(package.seconds + static.seconds, 1),
        "time_limited": time_limited,
    }


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# --- set-up ----------------------------------------------------------------------------------------------


def write_package(folder: Path, size: int) -> Package:
    """Random bytes (nothing compresses them), in the static server's folder."""
    folder.mkdir(parents=True)
    path = folder / PACKAGE
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(left, 2**20))
            digest.update(chunk)
            file.write(chunk)
            left -= len(chunk)
    return Package(path, size, digest.hexdigest())


async def seed(
    database_url: str, secret: str, count: int, package: Package, workdir: Path
) -> tuple[list[str], dict[str, Any]]:
    """The demo world plus `count` fleet cars, all made one model and all with updates switched on (consent
    rows inserted in bulk, as if each main user had switched them on), the package, and the fleet manifest.
    The manifest has no package URL: the cars hold their deliveries but download nothing, so the
    throughput blocks are this process's downloads alone."""
    from sqlalchemy import insert, select, update

    from carlink.clock import clock
    from carlink.db.base import Database
    from carlink.demo import world
    from carlink.fod.models import UpdateConsent
    from carlink.fod.service import add_package
    from carlink.garage.models import Vehicle
    from carlink.gateway.provisioning import fleet_manifest
    from carlink.identity.models import Account
    from carlink.remote.service import CommandSigner
    from carlink.settings import Settings

    settings = Settings(
        database_url=database_url,
        secret_key=secret,
        mqtt_topic_prefix=PREFIX,
        package_dir=str(workdir / "packages"),
    )
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await world.seed(session)
            fleet_vins = await world.ensure_sim_fleet(session, count)
            await CommandSigner().load(session)
            owner = await session.scalar(select(Account.id).where(Account.email == world.FLEET_OWNER))
            now = clock.now()
            for start in range(0, len(fleet_vins), 500):
                chunk = fleet_vins[start : start + 500]
                await session.execute(
                    update(Vehicle)
                    .where(Vehicle.vin.in_(chunk))
                    .values(model_key=MODEL_KEY, variant_code=VARIANT, model_year=MODEL_YEAR)
                    .execution_options(synchronize_session=False)
                )
                ids = list(await session.scalars(select(Vehicle.id).where(Vehicle.vin.in_(chunk))))
                await session.execute(
                    insert(UpdateConsent),
                    [{"vehicle_id": vid, "account_id": owner, "enabled": True, "at": now} for vid in ids],
                )
            await add_package(session, settings, PACKAGE, package.path)
        async with db.session() as session:
            manifest = await fleet_manifest(session, settings, broker_url="", vins=fleet_vins)
    finally:
        await db.dispose()
    for key in ("api_url", "trusted_root"):
        manifest.pop(key, None)
    return [car.vin for car in world.DEMO_CARS] + fleet_vins, manifest


async def start_static_server(workdir: Path, port: int) -> rc.Child:
    log = workdir / "static.log"
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(workdir / "static"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            preexec_fn=rc._die_with_parent,
        )
    return rc.Child("static server", process, log)


async def wait_static(static: rc.Child, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if static.process.returncode is not None:
                raise rc.SetupFailed(
                    f"the static server exited ({static.process.returncode}):\n{static.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.head(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise rc.SetupFailed(f"the static server did not answer within {timeout:.0f} s:\n{static.tail()}")


async def start_observer(config: dict[str, Any], workdir: Path) -> rc.Child:
    log = workdir / "observer.log"
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--role",
            "observer",
            "--role-config",
            json.dumps(config),
            cwd=PROJECT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            preexec_fn=rc._die_with_parent,
            limit=2**24,  # `received` lines carry many time stamps
        )
    observer = rc.Child("observer", process, log)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        raise rc.SetupFailed(f"the observer did not subscribe: {line.decode()!r}\n{observer.tail()}")
    return observer


def describe_setup(args: argparse.Namespace, mosquitto_version: str) -> str:
    from importlib.metadata import version

    broker = (
        f"embedded amqtt {version('amqtt')} in the service process"
        if args.broker == "embedded"
        else f"Mosquitto {mosquitto_version} (own process)"
    )
    database = "SQLite (WAL)" if args.database == "sqlite" else "PostgreSQL (asyncpg)"
    return (
        f"{database}; {broker}; service: uvicorn {version('uvicorn')}, all roles, one process; "
        f"fleet: {args.vehicles} cars (aiomqtt {version('aiomqtt')}) in one process, observer in another; "
        f"downloads: httpx {version('httpx')} in this process, {args.package_mb:g} MiB package, "
        f"concurrency {args.concurrency}, {args.rounds} alternating rounds; "
        f"static server: Python {host.python_version()} http.server"
    )


def print_summary(result: dict[str, Any]) -> None:
    console.print(
        f"offer: {result['offered']} of {result['vehicles']} cars had their Deliveries message "
        f"{result['offer_all_s']} s after the POST (p50 {result['offer_p50_s']} s, "
        f"p99 {result['offer_p99_s']} s; "
        f"the POST answered after {result['offer_post_s']} s)"
    )
    table = Table(title=f"downloads of a {result['package_mb']:g} MiB package ({result['setup']})")
    for column in ("server", "downloads", "MiB/s", "CPU s per GiB"):
        table.add_column(column)
    for name, label in (("package", "package endpoint (Basic auth)"), ("static", "static http.server")):
        table.add_row(
            label,
            str(result[f"{name}_downloads"]),
            str(result[f"{name}_mb_s"]),
            str(result[f"{name}_cpu_s_per_gib"]),
        )
    console.print(table)
    console.print(
        f"ratio_throughput {result['ratio_throughput']}; corrupt {result['corrupt']} of {result['verified']} "
        f"verified; errors {result['download_errors']}; resumed download ok: {result['range_resume_ok']}"
    )


# --- the observer process ---------------------------------------------------------------------------------


async def run_observer(config: dict[str, Any]) -> int:
    """One MQTT client with the gateway's broker account, subscribed to every car's down/deliveries, in a
    process of its own so that the cars' work cannot delay it. Reports on stdout `ready` once subscribed,
    then every 0.1 s `received <wall clock> ...` (the first Deliveries message per fleet car) and
    `messages <n>` (all Deliveries messages for fleet cars so far)."""
    from carlink.gateway.credentials import GATEWAY_USER, gateway_password
    from carlink.protocol.topics import DOWN_DELIVERIES, Topics
    from carlink.protocol.transport import BrokerAddress, make_client

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    wanted = set(json.loads(await asyncio.to_thread(Path(config["vins"]).read_text)))
    client = make_client(
        BrokerAddress.parse(config["broker_url"]),
        username=GATEWAY_USER,
        password=gateway_password(config["secret"]),
        identifier=f"bench-observer-{secrets.token_hex(4)}",
        max_inflight_messages=1000,
    )
    pending: list[float] = []
    seen: set[str] = set()
    messages = reported = 0

    async def flush() -> None:
        nonlocal reported
        while True:
            await asyncio.sleep(0.1)
            if pending:
                rc.say("received " + " ".join(f"{stamp:.6f}" for stamp in pending))
                pending.clear()
            if messages != reported:
                rc.say(f"messages {messages}")
                reported = messages

    flusher = asyncio.create_task(flush())
    try:
        async with client:
            await client.subscribe(Topics(PREFIX).down("+", DOWN_DELIVERIES), qos=1)
            rc.say("ready")
            async for message in client.messages:
                vin = str(message.topic).split("/")[2]
                if vin in wanted:
                    messages += 1
                    if vin not in seen:
                        seen.add(vin)
                        pending.append(time.time())
    except asyncio.CancelledError:
        return 0
    except Exception as exc:
        rc.say(f"failed {type(exc).__name__}: {exc}")
        return 1
    finally:
        await _cancel(flusher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
