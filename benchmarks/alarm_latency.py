"""Theft alarm latency: from the car's sensor to the SOC's live queue, with N simulated cars connected.

    python benchmarks/alarm_latency.py --vehicles 10000 --broker mosquitto
    python benchmarks/alarm_latency.py --vehicles 1000

What is timed (carlink issue 7): 1 % of the connected cars (--alarm-share) each raise one theft alarm
(`glass_break`), spread evenly over --spread seconds. An alarm counts as visible when the SOC's live queue
(`GET /soc/alarms/stream`, server-sent events, signed in as the demo SOC operator) delivers the case of that
car. Latency = wall clock at the event minus wall clock just before the car published (all processes share
this machine's clock). Baseline, in the same run and through the same broker: for every alarm the alarming
process also publishes a raw MQTT QoS 1 message of the same size, which a plain subscriber in this process
receives (mqtt_*); ratio_p99 = alarm_p99 / mqtt_p99.

`lost` = alarms raised minus cases seen in the queue within --measure-timeout; `stored` counts the alarm rows
in the database afterwards (each raised alarm must be there exactly once).

Processes: the service and the fleet (the cars that only stay connected) as remote_commands.py runs them; the
alarming cars (this script's `alarmer` role: SimulatedCars that raise the alarms when told on stdin); this one
(set-up, the SOC's event stream, the baseline subscriber, the report). Everything listens on 127.0.0.1 only;
every phase is bounded in count and in time; processes, temporary files and the PostgreSQL database are
cleaned up on success, error, Ctrl-C and SIGTERM. The last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform as host
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import remote_commands as rc  # benchmarks/ is on sys.path when a script in it runs
from rich.table import Table

SCRIPT = Path(__file__).resolve()
PREFIX = rc.PREFIX
TRIGGER = "glass_break"
# The baseline's payload has about the size of an AlarmSignal with a location.
BASELINE_BYTES = 200
console = rc.console
SOC_EMAIL = "soc@example.com"  # the demo SOC operator (carlink.demo.world.SOC_OPERATOR)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/alarm_latency.py",
        description=(
            "Theft alarm latency from the car to the SOC's live queue (server-sent events) with N simulated "
            "cars connected and a share of them raising alarms; a raw MQTT publish through the same broker "
            "is the baseline. The last line of stdout is one JSON object."
        ),
        epilog="Defaults are `carlink demo`'s set-up: SQLite and the embedded broker (benchmarks/README.md).",
    )
    parser.add_argument("--vehicles", type=int, default=1000, help="simulated cars connected (default 1000)")
    parser.add_argument(
        "--alarm-share", type=float, default=0.01, help="share of the cars that raise an alarm (0.01)"
    )
    parser.add_argument(
        "--spread", type=float, default=10.0, help="seconds over which the alarms are raised (default 10)"
    )
    rc.add_stack_options(parser)
    parser.add_argument(
        "--measure-timeout",
        type=float,
        default=120.0,
        help="seconds after the last alarm for the SOC to see them all (default 120)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is None:
        if args.vehicles < 2:
            parser.error("--vehicles must be at least 2")
        if not 0 < args.alarm_share <= 0.5:
            parser.error("--alarm-share must be above 0 and at most 0.5")
        if not 0 <= args.spread <= 600:
            parser.error("--spread must be 0 to 600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "alarmer":
        return asyncio.run(run_alarmer(json.loads(args.role_config)))
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:  # Ctrl-C: the clean-up has run; the contract still ends with a JSON line
        result = {"benchmark": "alarm_latency", "vehicles": args.vehicles, "error": "interrupted"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


# --- the benchmark process --------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; a set-up failure still yields a JSON object, with `error`."""
    alarms = max(1, round(args.vehicles * args.alarm_share))
    result: dict[str, Any] = {
        "benchmark": "alarm_latency",
        "vehicles": args.vehicles,
        "database": args.database,
        "broker": args.broker,
        "alarms": alarms,
        # The contract's keys are always there; null when a failed set-up left nothing to measure.
        **dict.fromkeys(("received", "lost", "alarm_p50_ms", "alarm_p99_ms", "mqtt_p50_ms", "mqtt_p99_ms")),
    }
    await rc.run_phases(result, lambda phase: _run(args, alarms, result, phase))
    if "error" not in result:
        print_summary(result)
    return result


async def _run(args: argparse.Namespace, alarms: int, result: dict[str, Any], phase: rc.Phase) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        database_url = await rc.create_database(args.database, workdir, cleanup)
        with phase.bar(f"seeding {args.vehicles} fleet cars ({args.database})", None):
            vins, manifest = await rc.seed(database_url, secret, args.vehicles)
        broker_url, broker_pid, mosquitto_version = rc.start_broker(
            args.broker, workdir, secret, vins, cleanup
        )
        manifest["broker_url"] = broker_url
        # The alarming cars are the last `alarms` of the fleet; the others only stay connected.
        quiet, alarming = manifest["cars"][:-alarms], manifest["cars"][-alarms:]
        quiet_path, alarming_path = workdir / "fleet.json", workdir / "alarming.json"
        quiet_path.write_text(json.dumps({**manifest, "cars": quiet}))
        alarming_path.write_text(json.dumps({**manifest, "cars": alarming}))
        alarm_vins = [car["vin"] for car in alarming]
        fleet_vins = [car["vin"] for car in manifest["cars"]]

        service, base_url = await rc.start_service(
            database_url,
            broker_url,
            secret,
            embedded=args.broker == "embedded",
            workdir=workdir,
            cleanup=cleanup,
        )
        with phase.bar("starting the service", None):
            await rc.wait_ready(service, base_url, timeout=90)

        connected = time.monotonic()
        fleet = await rc.start_child(
            "fleet",
            "fleet",
            {"manifest": str(quiet_path), "secret": secret, "timeout": args.connect_timeout},
            workdir,
            pipe=True,
        )
        cleanup.push_async_callback(fleet.stop)
        await rc.follow_fleet(fleet, len(quiet), phase, args.connect_timeout)
        alarmer = await rc.start_child(
            "alarmer",
            "alarmer",
            {"manifest": str(alarming_path), "secret": secret, "spread": args.spread},
            workdir,
            pipe=True,
            script=SCRIPT,
            stdin=True,
        )
        cleanup.push_async_callback(alarmer.stop)
        await rc.follow_fleet(alarmer, len(alarming), phase, args.connect_timeout)
        await rc.wait_online(database_url, fleet_vins, phase, deadline=connected + args.connect_timeout)
        result["online_s"] = round(time.monotonic() - connected, 1)

        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            await rc.portal_sign_in(http, SOC_EMAIL)
            measured = await measure(args, http, alarmer, alarm_vins, broker_url, secret, phase)
        result.update(measured)
        result["stored"] = await stored_alarms(database_url, alarm_vins)
        result.update(
            setup=f"{rc.describe_stack(args, mosquitto_version)} (alarming cars in a second process); "
            f"SOC client: httpx event stream + baseline subscriber in this process; {alarms} alarms over "
            f"{args.spread:g} s",
            service_rss_mb=round(rc.rss_kb(service.process.pid) / 1024, 1),
            broker_rss_mb=round(rc.rss_kb(broker_pid) / 1024, 1) if broker_pid else None,
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            machine=f"{os.cpu_count()} cpu, {rc._memory_gib()} GiB, {host.system()} {host.release()}",
            python=host.python_version(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        for child in (service, fleet, alarmer):
            if child.process.returncode is not None:
                raise rc.SetupFailed(
                    f"the {child.name} process died ({child.process.returncode}):\n{child.tail()}"
                )


class Arrivals:
    """When each car's alarm became visible: its case in the SOC stream, and its baseline message."""

    def __init__(self, vins: list[str]) -> None:
        self.expected = set(vins)
        self.soc: dict[str, float] = {}
        self.mqtt: dict[str, float] = {}
        self.changed = asyncio.Event()

    def saw_case(self, vin: str, at: float) -> None:
        if vin in self.expected and vin not in self.soc:
            self.soc[vin] = at
            self.changed.set()

    def saw_baseline(self, vin: str, at: float) -> None:
        if vin in self.expected and vin not in self.mqtt:
            self.mqtt[vin] = at
            self.changed.set()


async def follow_soc_stream(http: httpx.AsyncClient, arrivals: Arrivals, listening: asyncio.Event) -> None:
    """Reads the SOC's live queue as its page does; stamps each case's first event as it arrives."""
    async with http.stream("GET", "/soc/alarms/stream", timeout=httpx.Timeout(30, read=None)) as response:
        if response.status_code != 200:
            raise rc.SetupFailed(f"the SOC stream answered {response.status_code}")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                listening.set()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "alarm":
                arrivals.saw_case(json.loads(line[5:])["vin"], time.time())


async def follow_baseline(broker_url: str, secret: str, arrivals: Arrivals, listening: asyncio.Event) -> None:
    from carlink.gateway.credentials import GATEWAY_USER, gateway_password
    from carlink.protocol.transport import BrokerAddress, make_client

    client = make_client(
        BrokerAddress.parse(broker_url),
        username=GATEWAY_USER,
        password=gateway_password(secret),
        identifier=f"bench-baseline-{secrets.token_hex(4)}",
    )
    async with client:
        await client.subscribe(f"{PREFIX}/bench/alarm/+", qos=1)
        listening.set()
        async for message in client.messages:
            arrivals.saw_baseline(str(message.topic).rsplit("/", 1)[1], time.time())


async def measure(
    args: argparse.Namespace,
    http: httpx.AsyncClient,
    alarmer: rc.Child,
    vins: list[str],
    broker_url: str,
    secret: str,
    phase: rc.Phase,
) -> dict[str, Any]:
    arrivals = Arrivals(vins)
    soc_ready, baseline_ready = asyncio.Event(), asyncio.Event()
    readers = [
        asyncio.create_task(follow_soc_stream(http, arrivals, soc_ready)),
        asyncio.create_task(follow_baseline(broker_url, secret, arrivals, baseline_ready)),
    ]
    try:
        try:
            await asyncio.wait_for(asyncio.gather(soc_ready.wait(), baseline_ready.wait()), 30)
        except TimeoutError as exc:
            raise rc.SetupFailed("the SOC stream or the baseline subscriber did not start") from exc
        sent = await raise_alarms(alarmer, len(vins), args, phase)
        deadline = time.monotonic() + args.measure_timeout
        with phase.bar("alarms visible in the SOC queue", len(vins)) as advance:
            shown = 0
            while len(arrivals.soc) < len(vins) and time.monotonic() < deadline:
                arrivals.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrivals.changed.wait(), 1.0)
                advance(len(arrivals.soc) - shown)
                shown = len(arrivals.soc)
            # The baseline messages went out with the alarms; give stragglers a moment, bounded.
            baseline_deadline = time.monotonic() + 5
            while len(arrivals.mqtt) < len(sent) and time.monotonic() < baseline_deadline:
                await asyncio.sleep(0.1)
    finally:
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    alarm_ms = [arrivals.soc[vin] - at for vin, (at, _) in sent.items() if vin in arrivals.soc]
    mqtt_ms = [arrivals.mqtt[vin] - at for vin, (_, at) in sent.items() if vin in arrivals.mqtt]
    summary: dict[str, Any] = {
        "raised": len(sent),
        "received": len(arrivals.soc),
        "lost": len(vins) - len(arrivals.soc),
        "alarm_p50_ms": rc.ms(rc.percentile(alarm_ms, 0.50)),
        "alarm_p90_ms": rc.ms(rc.percentile(alarm_ms, 0.90)),
        "alarm_p99_ms": rc.ms(rc.percentile(alarm_ms, 0.99)),
        "alarm_max_ms": rc.ms(max(alarm_ms, default=None)),
        "mqtt_received": len(arrivals.mqtt),
        "mqtt_p50_ms": rc.ms(rc.percentile(mqtt_ms, 0.50)),
        "mqtt_p99_ms": rc.ms(rc.percentile(mqtt_ms, 0.99)),
    }
    p99, base = summary["alarm_p99_ms"], summary["mqtt_p99_ms"]
    summary["ratio_p99"] = round(p99 / base, 2) if p99 and base else None
    return summary


async def raise_alarms(
    alarmer: rc.Child, count: int, args: argparse.Namespace, phase: rc.Phase
) -> dict[str, tuple[float, float]]:
    """Tells the alarming cars to go; returns per VIN the wall clock before the alarm and before the
    baseline message were published."""
    assert alarmer.process.stdin is not None and alarmer.process.stdout is not None
    alarmer.process.stdin.write(b"go\n")
    await alarmer.process.stdin.drain()
    sent: dict[str, tuple[float, float]] = {}
    deadline = time.monotonic() + args.spread + 60
    with phase.bar(f"raising {count} alarms over {args.spread:.0f} s", count) as advance:
        while len(sent) < count:
            try:
                line = await asyncio.wait_for(
                    alarmer.process.stdout.readline(), max(0.1, deadline - time.monotonic())
                )
            except TimeoutError as exc:
                raise rc.SetupFailed(f"the alarming cars raised {len(sent)} of {count} alarms") from exc
            if not line:
                raise rc.SetupFailed(f"the alarming cars' process exited:\n{alarmer.tail()}")
            word, _, value = line.decode().strip().partition(" ")
            if word == "sent":
                vin, alarm_at, baseline_at = value.split()
                sent[vin] = (float(alarm_at), float(baseline_at))
                advance()
            elif word == "failed":
                raise rc.SetupFailed(f"the alarming cars failed: {value}")
    return sent


async def stored_alarms(database_url: str, vins: list[str]) -> int:
    """Alarm rows the cloud holds for the alarming cars: one per raised alarm, re-sends included once."""
    from sqlalchemy import func, select

    from carlink.db.base import Database
    from carlink.garage.models import Vehicle
    from carlink.security.models import AlarmSignalRecord

    db = Database(database_url)
    try:
        async with db.session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(AlarmSignalRecord)
                .join(Vehicle, Vehicle.id == AlarmSignalRecord.vehicle_id)
                .where(Vehicle.vin.in_(vins))
            )
    finally:
        await db.dispose()
    return int(count or 0)


def print_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"theft alarms, {result['vehicles']} cars connected ({result['setup']})")
    for column in ("path", "raised", "seen", "p50 ms", "p99 ms"):
        table.add_column(column)
    table.add_row(
        "car -> SOC live queue (SSE)",
        str(result["raised"]),
        str(result["received"]),
        str(result["alarm_p50_ms"]),
        str(result["alarm_p99_ms"]),
    )
    table.add_row(
        "raw MQTT QoS 1 publish -> subscriber",
        str(result["raised"]),
        str(result["mqtt_received"]),
        str(result["mqtt_p50_ms"]),
        str(result["mqtt_p99_ms"]),
    )
    console.print(table)
    console.print(
        f"lost {result['lost']}, stored {result['stored']}, ratio_p99 {result['ratio_p99']} "
        f"(goal: alarm p99 < 1000 ms)"
    )


# --- the alarming cars (a child process) ------------------------------------------------------------------


async def run_alarmer(config: dict[str, Any]) -> int:
    """Connects its cars like `carlink sim --manifest`, says `ready` (remote_commands' follow_fleet reads
    it), waits for `go` on stdin, then raises one alarm per car, evenly over `spread` seconds, each one
    followed by its baseline message; prints `sent VIN alarm_wall baseline_wall` per car."""
    from carlink.gateway.credentials import GATEWAY_USER, gateway_password
    from carlink.protocol.transport import BrokerAddress, make_client
    from carlink.sim.fleet import Fleet, Manifest

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    manifest = Manifest.load(Path(config["manifest"]))
    rc.say(f"rss {rc.rss_kb()}")
    fleet = Fleet(manifest, report_interval=24 * 3600.0)
    baseline = make_client(
        BrokerAddress.parse(manifest.broker_url),
        username=GATEWAY_USER,
        password=gateway_password(config["secret"]),
        identifier=f"bench-baseline-pub-{secrets.token_hex(4)}",
    )
    payload = b"b" * BASELINE_BYTES
    try:
        await asyncio.wait_for(
            fleet.start(concurrency=50, timeout=600, progress=lambda n: rc.say(f"connected {n}")), 600
        )
        async with baseline:
            rc.say(f"ready {rc.rss_kb()}")
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            if (await reader.readline()).strip() != b"go":
                return 0
            cars = list(fleet.cars.values())
            gap = config["spread"] / max(1, len(cars))
            began = loop.time()
            for index, car in enumerate(cars):
                await asyncio.sleep(max(0.0, began + index * gap - loop.time()))
                alarm_at = time.time()
                if await car.trigger_sensor(TRIGGER) is None:
                    rc.say(f"failed the alarm of {car.vin} was suppressed")
                    return 1
                baseline_at = time.time()
                await baseline.publish(f"{PREFIX}/bench/alarm/{car.vin}", payload, qos=1)
                rc.say(f"sent {car.vin} {alarm_at:.6f} {baseline_at:.6f}")
            await asyncio.Event().wait()  # the cars keep re-sending until acknowledged; until SIGTERM
    except asyncio.CancelledError:
        return 0
    except Exception as exc:
        rc.say(f"failed {type(exc).__name__}: {exc}")
        return 1
    finally:
        await rc._stop_cars(fleet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
