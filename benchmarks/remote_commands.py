"""Remote-command round trip with N simulated cars online, against a raw MQTT round trip on the same broker.

    python benchmarks/remote_commands.py --vehicles 1000
    python benchmarks/remote_commands.py --vehicles 10000 --broker mosquitto

The last line on stdout is one JSON object (vehicles, cmd_p50_ms, cmd_p99_ms, mqtt_p50_ms, mqtt_p99_ms,
ratio_p99 = cmd_p99 / mqtt_p99, ...); progress and a summary go to stderr. benchmarks/README.md explains
what is measured, why the baseline, and the results on the reference machine.

Three processes, so that neither the cars nor the load generator steal the service's event loop:
  service  uvicorn with all roles (api, gateway, jobs), plus the embedded amqtt broker when that is the broker
  fleet    `carlink.sim.fleet.Fleet` from the fleet manifest, plus the MQTT echo responder of the baseline
  this     set-up, the HTTP load generator, the MQTT requester of the baseline, and the report
Everything listens on 127.0.0.1 only; every loop is bounded in count and in time; processes, temporary
files and the PostgreSQL database are cleaned up on success, error, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import itertools
import json
import math
import os
import platform as host
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SCRIPT = Path(__file__).resolve()
PROJECT = SCRIPT.parents[1]
POSTGRES_ADMIN = os.environ.get("CARLINK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "carlink"
# The baseline's payloads have the sizes of a signed LOCK envelope and of an ack, so both paths move
# about the same bytes through the broker.
REQUEST_BYTES = 420
REPLY_BYTES = 130
console = Console(stderr=True)


# --- command line -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/remote_commands.py",
        description=(
            "Remote-command round trip (POST /commands -> the simulated car performs it -> GET ?wait= "
            "sees the final state) with N simulated cars online, and a raw MQTT QoS 1 request/response "
            "round trip on the same broker as the baseline. The last line of stdout is one JSON object."
        ),
        epilog="Defaults are `carlink demo`'s set-up: SQLite and the embedded broker (benchmarks/README.md).",
    )
    parser.add_argument("--vehicles", type=int, default=1000, help="simulated cars online (default 1000)")
    parser.add_argument(
        "--commands", type=int, default=2000, help="commands to time, and MQTT round trips (2000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="round trips in flight at once (default 8)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="alternate MQTT and command blocks this many times, so both see the same background load (4)",
    )
    add_stack_options(parser)
    parser.add_argument("--command-type", default="LOCK", help="remote service to send (default LOCK)")
    parser.add_argument(
        "--measure-timeout",
        type=float,
        default=300.0,
        help="seconds for the timed round trips; what is done by then is reported (default 300)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is None:
        for name in ("vehicles", "commands", "concurrency", "rounds"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be at least 1")
    return args


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """--database, --broker and --connect-timeout: the set-up every fleet benchmark shares."""
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), default="sqlite", help="default: sqlite"
    )
    parser.add_argument(
        "--broker",
        choices=("embedded", "mosquitto"),
        default="embedded",
        help="embedded amqtt in the service process (default) or our own Mosquitto on a free loopback port",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=600.0,
        help="seconds for the cars to connect and for the cloud to see them all online (default 600)",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "service":
        run_service(json.loads(args.role_config))
        return 0
    if args.role == "fleet":
        return asyncio.run(run_fleet(json.loads(args.role_config)))
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:  # Ctrl-C: the clean-up has run; the contract still ends with a JSON line
        result = {"benchmark": "remote_commands", "vehicles": args.vehicles, "error": "interrupted"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


# --- measurements -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class Timings:
    """Round trips of one kind: durations of the successful ones, and what went wrong with the others."""

    done: list[float] = field(default_factory=list)
    first_leg: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    # Commands only: (id, wall clock at POST, at 202, at the final state), to split the time by the
    # timestamps the service records.
    traces: list[tuple[str, float, float, float]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.done) + sum(self.errors.values())

    def summary(self, name: str) -> dict[str, Any]:
        return {
            f"{name}_sent": self.sent,
            f"{name}_errors": sum(self.errors.values()),
            f"{name}_p50_ms": ms(percentile(self.done, 0.50)),
            f"{name}_p90_ms": ms(percentile(self.done, 0.90)),
            f"{name}_p99_ms": ms(percentile(self.done, 0.99)),
            f"{name}_max_ms": ms(max(self.done, default=None)),
        }


async def run_bounded(
    count: int,
    concurrency: int,
    deadline: float,
    one: Callable[[int], Awaitable[None]],
    advance: Callable[[], None],
) -> bool:
    """Runs `one(i)` for i < count with `concurrency` workers; stops starting new ones at `deadline`.
    True when the deadline cut the run short."""
    loop = asyncio.get_running_loop()
    numbers = itertools.count()
    cut = False

    async def worker() -> None:
        nonlocal cut
        while (index := next(numbers)) < count:
            if loop.time() >= deadline:
                cut = True
                return
            await one(index)
            advance()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return cut


class CommandClient:
    """A phone app's view: send the command, then long-poll its state until it is final."""

    def __init__(self, http: httpx.AsyncClient, vins: list[str], command_type: str) -> None:
        self.http = http
        self.vins = vins
        self.body = {"type": command_type}

    async def round_trip(self, index: int, timings: Timings) -> None:
        vin = self.vins[index % len(self.vins)]
        wall = time.time()
        started = time.perf_counter()
        try:
            response = await self.http.post(f"/api/v1/vehicles/{vin}/commands", json=self.body)
            accepted = time.perf_counter()
            if response.status_code != 202:
                timings.errors[f"post {response.status_code} {_error_code(response)}"] += 1
                return
            command_id = response.json()["id"]
            response = await self.http.get(
                f"/api/v1/vehicles/{vin}/commands/{command_id}", params={"wait": 10}
            )
            finished = time.perf_counter()
        except httpx.HTTPError as exc:
            timings.errors[type(exc).__name__] += 1
            return
        state = (
            response.json().get("state") if response.status_code == 200 else f"http {response.status_code}"
        )
        if state != "performed":
            timings.errors[f"final state {state}"] += 1
            return
        timings.first_leg.append(accepted - started)
        timings.done.append(finished - started)
        timings.traces.append((command_id, wall, wall + accepted - started, wall + finished - started))


def _error_code(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(response.json()["error"]["code"])
    return ""


class MqttRequester:
    """The baseline's asking side: QoS 1 request on .../bench/req/{id}, the answer on .../bench/resp/{id}."""

    def __init__(self, broker_url: str, password: str) -> None:
        from carlink.gateway.credentials import GATEWAY_USER
        from carlink.protocol.transport import BrokerAddress, make_client

        self.client = make_client(
            BrokerAddress.parse(broker_url),
            username=GATEWAY_USER,
            password=password,
            identifier=f"bench-requester-{secrets.token_hex(4)}",
            max_inflight_messages=1000,
        )
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.payload = b"r" * REQUEST_BYTES

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[MqttRequester]:
        async with self.client:
            await self.client.subscribe(f"{PREFIX}/bench/resp/+", qos=1)
            reader = asyncio.create_task(self._read())
            try:
                yield self
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self) -> None:
        async for message in self.client.messages:
            future = self.waiting.pop(str(message.topic).rsplit("/", 1)[1], None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    async def round_trip(self, index: int, timings: Timings) -> None:
        request_id = f"{index}-{secrets.token_hex(4)}"
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        started = time.perf_counter()
        try:
            await self.client.publish(f"{PREFIX}/bench/req/{request_id}", self.payload, qos=1, timeout=10)
            acked = time.perf_counter()
            answered = await asyncio.wait_for(future, 10)
        except Exception as exc:  # aiomqtt.MqttError or TimeoutError: counted, never fatal
            self.waiting.pop(request_id, None)
            timings.errors[type(exc).__name__] += 1
            return
        timings.first_leg.append(acked - started)
        timings.done.append(answered - started)


# --- the benchmark process --------------------------------------------------------------------------------


class SetupFailed(Exception):
    pass


@dataclass
class Child:
    """A process of ours: killed with us (PR_SET_PDEATHSIG) and stopped by us on the way out."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, grace: float = 20.0) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def start_child(
    name: str,
    role: str,
    config: dict[str, Any],
    workdir: Path,
    *,
    pipe: bool = False,
    script: Path = SCRIPT,
    stdin: bool = False,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Child:
    """A role of `script` (this one by default) as a child process; `pipe` reads its stdout, `stdin` lets
    the benchmark write to it. `command` runs another program instead (then `role` and `config` are
    unused), with `env` added to this process's environment."""
    log = workdir / f"{name}.log"
    argv = command or [sys.executable, str(script), "--role", role, "--role-config", json.dumps(config)]
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=PROJECT,
            env={**os.environ, **env} if env else None,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe else sink,
            stderr=sink,
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log)


def rss_kb(pid: int | None = None) -> int:
    """Resident memory of a process from /proc (Linux), in KiB; 0 when unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    from carlink.gateway.embedded import free_port as pick

    return pick()


class Phase:
    """One rich progress bar on stderr, so stdout's last line stays the JSON."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Any:
        task = self.progress.add_task(description, total=total)
        yield lambda n=1: self.progress.advance(task, n)
        if total is None:  # a phase without a count shows as done once it is
            self.progress.update(task, completed=1, total=1)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; a set-up failure still yields a JSON object, with `error`."""
    result: dict[str, Any] = {
        "benchmark": "remote_commands",
        "vehicles": args.vehicles,
        "database": args.database,
        "broker": args.broker,
        "concurrency": args.concurrency,
        "commands_requested": args.commands,
        # The contract's keys are always there; null when a failed set-up left nothing to measure.
        **dict.fromkeys(("cmd_p50_ms", "cmd_p99_ms", "mqtt_p50_ms", "mqtt_p99_ms", "ratio_p99")),
    }
    await run_phases(result, lambda phase: _run(args, result, phase))
    if "error" not in result:
        print_summary(result)
    return result


async def run_phases(result: dict[str, Any], run: Callable[[Phase], Awaitable[None]]) -> None:
    """Runs a benchmark's phases under progress bars on stderr. SIGTERM cancels them as Ctrl-C does, so every
    clean-up runs; a failed set-up or an interruption ends as `result["error"]`; sets `total_s`."""
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = time.monotonic()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress:
            await run(Phase(progress))
    except SetupFailed as exc:
        result["error"] = str(exc)
        console.print(f"[red]set-up failed:[/red] {exc}")
    except asyncio.CancelledError:
        result["error"] = "interrupted"
        console.print("[yellow]interrupted; cleaned up[/yellow]")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    result["total_s"] = round(time.monotonic() - started, 1)


async def _run(args: argparse.Namespace, result: dict[str, Any], phase: Phase) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        database_url = await create_database(args.database, workdir, cleanup)
        with phase.bar(f"seeding {args.vehicles} fleet cars ({args.database})", None):
            seeded = time.monotonic()
            vins, manifest = await seed(database_url, secret, args.vehicles)
            result["seed_s"] = round(time.monotonic() - seeded, 1)
        broker_url, broker_pid, mosquitto_version = start_broker(args.broker, workdir, secret, vins, cleanup)
        manifest["broker_url"] = broker_url
        manifest_path = workdir / "fleet.json"
        manifest_path.write_text(json.dumps(manifest))
        fleet_vins = [car["vin"] for car in manifest["cars"]]

        service, base_url = await start_service(
            database_url,
            broker_url,
            secret,
            embedded=args.broker == "embedded",
            workdir=workdir,
            cleanup=cleanup,
        )
        with phase.bar("starting the service", None):
            await wait_ready(service, base_url, timeout=90)

        fleet = await start_child(
            "fleet",
            "fleet",
            {"manifest": str(manifest_path), "secret": secret, "timeout": args.connect_timeout},
            workdir,
            pipe=True,
        )
        cleanup.push_async_callback(fleet.stop)
        connected = time.monotonic()
        fleet_rss = await follow_fleet(fleet, len(fleet_vins), phase, args.connect_timeout)
        result["connect_s"] = round(time.monotonic() - connected, 1)
        await wait_online(database_url, fleet_vins, phase, deadline=connected + args.connect_timeout)
        result["online_s"] = round(time.monotonic() - connected, 1)

        async with httpx.AsyncClient(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=args.concurrency * 2)
        ) as http:
            token = await oidc_login(http, "fleet@example.com", "carlink-demo")
            http.headers["Authorization"] = f"Bearer {token}"
            commands = CommandClient(http, fleet_vins, args.command_type)
            from carlink.gateway.credentials import gateway_password

            requester = MqttRequester(broker_url, gateway_password(secret))
            async with requester.connected():
                measured, traces = await measure(args, commands, requester, phase)
        result.update(measured)
        result["cmd_breakdown_ms"] = await breakdown(database_url, traces)
        result.update(
            sim_rss_mb=round(fleet_rss[1] / 1024, 1),
            sim_rss_per_car_kb=round((fleet_rss[1] - fleet_rss[0]) / max(1, len(fleet_vins)), 1),
            service_rss_mb=round(rss_kb(service.process.pid) / 1024, 1),
            # The embedded broker lives in the service process: its memory is in service_rss_mb.
            broker_rss_mb=round(rss_kb(broker_pid) / 1024, 1) if broker_pid else None,
            setup=describe_setup(args, mosquitto_version),
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            machine=f"{os.cpu_count()} cpu, {_memory_gib()} GiB, {host.system()} {host.release()}",
            python=host.python_version(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        for child in (service, fleet):
            if child.process.returncode is not None:
                raise SetupFailed(
                    f"the {child.name} process died ({child.process.returncode}):\n{child.tail()}"
                )


async def measure(
    args: argparse.Namespace, commands: CommandClient, requester: MqttRequester, phase: Phase
) -> tuple[dict[str, Any], list[tuple[str, float, float, float]]]:
    """Warm-up, then alternating MQTT and command blocks, bounded by --measure-timeout."""
    loop = asyncio.get_running_loop()
    warm = Timings(), Timings()
    far = loop.time() + 60
    with phase.bar("warm-up", 4 * args.concurrency) as advance:
        await run_bounded(
            2 * args.concurrency, args.concurrency, far, lambda i: requester.round_trip(i, warm[0]), advance
        )
        await run_bounded(
            2 * args.concurrency, args.concurrency, far, lambda i: commands.round_trip(i, warm[1]), advance
        )
    if warm[1].errors and not warm[1].done:
        raise SetupFailed(f"no warm-up command succeeded: {dict(warm[1].errors)}")
    mqtt, cmd = Timings(), Timings()
    deadline = loop.time() + args.measure_timeout
    rounds = min(args.rounds, args.commands)
    cut = False
    began = time.monotonic()
    command_time = 0.0
    with phase.bar(f"MQTT and command round trips, {rounds} rounds", 2 * args.commands) as advance:
        for block in range(rounds):
            size = args.commands // rounds + (1 if block < args.commands % rounds else 0)
            offset = block * (args.commands // rounds) + min(block, args.commands % rounds)
            cut |= await run_bounded(
                size,
                args.concurrency,
                deadline,
                lambda i, o=offset: requester.round_trip(o + i, mqtt),
                advance,
            )
            block_began = time.monotonic()
            cut |= await run_bounded(
                size, args.concurrency, deadline, lambda i, o=offset: commands.round_trip(o + i, cmd), advance
            )
            command_time += time.monotonic() - block_began
    summary: dict[str, Any] = {**cmd.summary("cmd"), **mqtt.summary("mqtt")}
    summary.update(
        commands_sent=cmd.sent,
        errors=sum(cmd.errors.values()) + sum(mqtt.errors.values()),
        error_kinds=dict(cmd.errors + mqtt.errors),
        cmd_accept_p50_ms=ms(percentile(cmd.first_leg, 0.50)),
        cmd_accept_p99_ms=ms(percentile(cmd.first_leg, 0.99)),
        mqtt_puback_p50_ms=ms(percentile(mqtt.first_leg, 0.50)),
        cmd_per_s=round(len(cmd.done) / command_time, 1) if command_time else None,
        measure_s=round(time.monotonic() - began, 1),
        time_limited=cut,
    )
    cmd_p99, mqtt_p99 = summary["cmd_p99_ms"], summary["mqtt_p99_ms"]
    cmd_p50, mqtt_p50 = summary["cmd_p50_ms"], summary["mqtt_p50_ms"]
    summary["ratio_p99"] = round(cmd_p99 / mqtt_p99, 2) if cmd_p99 and mqtt_p99 else None
    summary["ratio_p50"] = round(cmd_p50 / mqtt_p50, 2) if cmd_p50 and mqtt_p50 else None
    return summary, cmd.traces


async def breakdown(database_url: str, traces: list[tuple[str, float, float, float]]) -> dict[str, Any]:
    """Where a command's time goes, from the client's clock and the times the service recorded
    (created_at, delivered_at, finished_at); all processes share this machine's clock.

    to_recorded:    POST sent -> command row recorded (HTTP, token check, garage lookup, signing)
    to_delivered:   recorded -> 'delivered' ack applied (commit, publish, broker, car, ack back, gateway)
    to_performed:   delivered -> 'performed' ack applied (car telemetry and ack, two gateway transactions)
    to_client:      performed -> the long poll returned it (commit, wake-up, re-read, HTTP response)
    accepted_after: POST sent -> 202 received (for reference; overlaps to_delivered)
    """
    from sqlalchemy import select

    from carlink.db.base import Database
    from carlink.remote.models import RemoteCommand

    by_id = {trace[0]: trace for trace in traces}
    segments: dict[str, list[float]] = {
        name: [] for name in ("to_recorded", "to_delivered", "to_performed", "to_client", "accepted_after")
    }
    db = Database(database_url)
    try:
        ids = list(by_id)
        async with db.session() as session:
            for chunk in range(0, len(ids), 500):
                rows = await session.execute(
                    select(
                        RemoteCommand.id,
                        RemoteCommand.created_at,
                        RemoteCommand.delivered_at,
                        RemoteCommand.finished_at,
                    ).where(RemoteCommand.id.in_(ids[chunk : chunk + 500]))
                )
                for command_id, created, delivered, finished in rows.all():
                    if delivered is None or finished is None:
                        continue
                    _, posted, accepted, seen = by_id[command_id]
                    segments["to_recorded"].append(created.timestamp() - posted)
                    segments["to_delivered"].append((delivered - created).total_seconds())
                    segments["to_performed"].append((finished - delivered).total_seconds())
                    segments["to_client"].append(seen - finished.timestamp())
                    segments["accepted_after"].append(accepted - posted)
    finally:
        await db.dispose()
    return {
        name: {"p50": ms(percentile(values, 0.5)), "p99": ms(percentile(values, 0.99))}
        for name, values in segments.items()
    }


# --- set-up ----------------------------------------------------------------------------------------------


async def create_database(kind: str, workdir: Path, cleanup: contextlib.AsyncExitStack) -> str:
    """A fresh, migrated database: a SQLite file in the work directory, or a PostgreSQL database we drop."""
    from carlink.db.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'carlink.db'}"
    else:
        import asyncpg

        name = f"carlink_bench_{secrets.token_hex(6)}"
        try:
            admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SetupFailed(f"PostgreSQL at {POSTGRES_ADMIN} is not reachable: {exc}") from exc
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

        async def drop() -> None:
            admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=10)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()

        cleanup.push_async_callback(drop)
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        url = f"{base}/{name}"
    await upgrade(url)
    return url


async def seed(database_url: str, secret: str, count: int) -> tuple[list[str], dict[str, Any]]:
    """The demo world plus `count` fleet cars owned by fleet@example.com, the fleet's signing key, and the
    manifest of the fleet cars (their broker URL is filled in once the broker is known)."""
    from carlink.db.base import Database
    from carlink.demo import world
    from carlink.gateway.provisioning import fleet_manifest
    from carlink.remote.service import CommandSigner
    from carlink.settings import Settings

    settings = Settings(database_url=database_url, secret_key=secret, mqtt_topic_prefix=PREFIX)
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await world.seed(session)
            fleet_vins = await world.ensure_sim_fleet(session, count)
            await CommandSigner().load(session)
        async with db.session() as session:
            manifest = await fleet_manifest(session, settings, broker_url="", vins=fleet_vins)
    finally:
        await db.dispose()
    return [car.vin for car in world.DEMO_CARS] + fleet_vins, manifest


def start_broker(
    kind: str, workdir: Path, secret: str, vins: list[str], cleanup: contextlib.AsyncExitStack
) -> tuple[str, int | None, str]:
    """Mosquitto runs as our own process now; the embedded broker starts inside the service process."""
    if kind == "embedded":
        return f"mqtt://127.0.0.1:{free_port()}", None, ""
    from carlink.gateway.mosquitto import MosquittoProcess, mosquitto_binary

    binary = mosquitto_binary()
    if binary is None:
        raise SetupFailed("mosquitto is not installed (apt-get install mosquitto)")
    broker = MosquittoProcess(workdir / "mosquitto", secret=secret, prefix=PREFIX, vins=vins)
    try:
        broker.start()
    except RuntimeError as exc:
        raise SetupFailed(str(exc)) from exc
    cleanup.callback(broker.stop)
    assert broker.process is not None
    return broker.url, broker.process.pid, _mosquitto_version(binary)


def _mosquitto_version(binary: str) -> str:
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5, check=False).stdout
        return out.splitlines()[0].split(" version ")[-1].strip() if out else ""
    return ""


async def start_service(
    database_url: str,
    broker_url: str,
    secret: str,
    *,
    embedded: bool,
    workdir: Path,
    cleanup: contextlib.AsyncExitStack,
    roles: list[str] | None = None,
    env: dict[str, str] | None = None,
    name: str = "service",
) -> tuple[Child, str]:
    """The service role (uvicorn with all roles; with `embedded`, the amqtt broker too) on a free loopback
    port, stopped by `cleanup`; its base URL. Not yet ready: `wait_ready` waits for it.

    With `roles`, one instance of a split deployment instead: `carlink serve --role ...` as an operator runs
    it, configured by CARLINK_* variables (database, broker, secret, base URL, plus `env`)."""
    port = free_port()
    config = {
        "database_url": database_url,
        "broker_url": broker_url,
        "secret": secret,
        "port": port,
        "embedded": embedded,
    }
    command = None
    if roles:
        command = [
            str(Path(sys.executable).with_name("carlink")),
            "serve",
            "--port",
            str(port),
            "--no-migrate",
        ]
        command += [option for role in roles for option in ("--role", role)]
        env = {
            "CARLINK_DATABASE_URL": database_url,
            "CARLINK_MQTT_URL": broker_url,
            "CARLINK_MQTT_TOPIC_PREFIX": PREFIX,
            "CARLINK_SECRET_KEY": secret,
            "CARLINK_BASE_URL": f"http://127.0.0.1:{port}",
            "CARLINK_LOG_LEVEL": "WARNING",
            # A benchmark sends thousands of commands from one ID, many to one car: it measures
            # throughput, not the per-car rate limit (issue 9), so the limit is out of its way.
            "CARLINK_COMMANDS_PER_VEHICLE": "1000000",
            **(env or {}),
        }
    service = await start_child(name, "service", config, workdir, command=command, env=env)
    cleanup.push_async_callback(service.stop)
    return service, f"http://127.0.0.1:{port}"


async def portal_sign_in(http: httpx.AsyncClient, email: str) -> None:
    """A demo person signs in through the portal's form, as in a browser; the client keeps the cookie."""
    import re

    from carlink.demo import world

    form = await http.get("/signin")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    if token is None:
        raise SetupFailed(f"no sign-in form at /signin ({form.status_code})")
    response = await http.post(
        "/signin", data={"email": email, "password": world.PASSWORD, "login_token": token.group(1)}
    )
    if response.status_code != 303:
        raise SetupFailed(f"{email} could not sign in ({response.status_code})")


async def wait_ready(service: Child, base_url: str, timeout: float) -> None:
    """The service answers /ready (database reachable, gateway connected to the broker)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise SetupFailed(f"the service exited ({service.process.returncode}):\n{service.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SetupFailed(f"the service was not ready within {timeout:.0f} s:\n{service.tail()}")


async def follow_fleet(fleet: Child, total: int, phase: Phase, timeout: float) -> tuple[int, int]:
    """Shows the fleet's connection progress; returns its RSS (KiB) before the cars and with them online."""
    assert fleet.process.stdout is not None
    before = after = 0
    deadline = time.monotonic() + timeout + 30
    with phase.bar(f"connecting {total} cars", total) as advance:
        while True:
            left = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(fleet.process.stdout.readline(), max(0.1, left))
            except TimeoutError as exc:
                raise SetupFailed(f"the cars did not connect within {timeout:.0f} s") from exc
            if not line:
                await fleet.process.wait()
                raise SetupFailed(f"the fleet process exited ({fleet.process.returncode}):\n{fleet.tail()}")
            word, _, value = line.decode().strip().partition(" ")
            if word == "rss":
                before = int(value)
            elif word == "connected":
                advance(int(value))
            elif word == "ready":
                after = int(value)
                return before, after
            elif word == "failed":
                raise SetupFailed(f"the fleet could not connect: {value}\n{fleet.tail()}")


async def wait_online(database_url: str, vins: list[str], phase: Phase, deadline: float) -> None:
    """The cloud has recorded every car's 'online' message and its first telemetry, which carries the
    remote-access authorisation that commands need. One cheap count a second: this process shares the two
    cores with the service, which is busy with 2 uplinks per car."""
    from sqlalchemy import func, select

    from carlink.db.base import Database
    from carlink.demo.world import DEMO_CARS
    from carlink.garage.models import Vehicle

    # The database is fresh: every car but the demo world's three is a fleet car (and no 10,000-item IN).
    ready_cars = (
        select(func.count())
        .select_from(Vehicle)
        .where(
            Vehicle.vin.not_in([car.vin for car in DEMO_CARS]),
            Vehicle.online.is_(True),
            Vehicle.remote_access_authorised.is_(True),
        )
    )
    db = Database(database_url)
    seen = 0
    try:
        with phase.bar("cloud records the cars online", len(vins)) as advance:
            while True:
                async with db.session() as session:
                    ready = await session.scalar(ready_cars) or 0
                advance(ready - seen)
                seen = ready
                if ready >= len(vins):
                    return
                if time.monotonic() > deadline:
                    raise SetupFailed(f"only {ready} of {len(vins)} cars online and reporting in time")
                await asyncio.sleep(1.0)
    finally:
        await db.dispose()


async def oidc_login(http: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token from the real authorization-code flow with PKCE, as the app gets one."""
    try:
        return await _authorization_code_flow(http, email, password)
    except (KeyError, ValueError, httpx.HTTPError) as exc:
        raise SetupFailed(f"sign-in of {email} failed: {type(exc).__name__} {exc}") from exc


async def _authorization_code_flow(http: httpx.AsyncClient, email: str, password: str) -> str:
    from carlink.identity.tokens import pkce_s256

    verifier = secrets.token_urlsafe(48)
    redirect_uri = "carlink://callback"
    response = await http.get(
        "/authorize",
        params={
            "client_id": "carlink-app",
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid offline_access vehicles",
            "state": "bench",
            "code_challenge": pkce_s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    state = httpx.URL(response.headers["location"]).params["state"]
    await http.post(f"/u/login/identifier?state={state}", data={"state": state, "username": email})
    response = await http.post(
        f"/u/login/password?state={state}", data={"state": state, "username": email, "password": password}
    )
    response = await http.get(response.headers["location"])
    code = httpx.URL(response.headers["location"]).params["code"]
    http.cookies.clear()
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "carlink-app",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def describe_stack(args: argparse.Namespace, mosquitto_version: str) -> str:
    """Database, broker, service and fleet of a run (the other benchmarks say what they add)."""
    from importlib.metadata import version

    broker = (
        f"embedded amqtt {version('amqtt')} in the service process"
        if args.broker == "embedded"
        else f"Mosquitto {mosquitto_version} (own process, set_tcp_nodelay true)"
    )
    database = "SQLite (WAL)" if args.database == "sqlite" else "PostgreSQL (asyncpg)"
    return (
        f"{database}; {broker}; service: uvicorn {version('uvicorn')}, all roles, one process; "
        f"fleet: {args.vehicles} cars (aiomqtt {version('aiomqtt')}, TCP_NODELAY) in one process"
    )


def describe_setup(args: argparse.Namespace, mosquitto_version: str) -> str:
    from importlib.metadata import version

    return (
        f"{describe_stack(args, mosquitto_version)}; "
        f"load generator: httpx {version('httpx')} + aiomqtt requester in this process; "
        f"{args.command_type}, concurrency {args.concurrency}, {args.rounds} alternating rounds"
    )


def _memory_gib() -> int:
    with contextlib.suppress(OSError, ValueError):
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return 0


def print_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"remote commands, {result['vehicles']} cars online ({result['setup']})")
    for column in ("round trip", "done", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column)
    for name, label in (("cmd", "command (HTTP -> car -> final state)"), ("mqtt", "raw MQTT QoS 1 req/resp")):
        table.add_row(
            label,
            str(result[f"{name}_sent"] - result[f"{name}_errors"]),
            str(result[f"{name}_errors"]),
            *(str(result[f"{name}_{p}_ms"]) for p in ("p50", "p90", "p99", "max")),
        )
    console.print(table)
    console.print(
        f"ratio p99 {result['ratio_p99']} (p50 {result['ratio_p50']}); {result['cmd_per_s']} commands/s; "
        f"{result['sim_rss_per_car_kb']} KiB per simulated car; service {result['service_rss_mb']} MB, "
        f"broker {result['broker_rss_mb']} MB"
    )


# --- the service process ----------------------------------------------------------------------------------


def run_service(config: dict[str, Any]) -> None:
    """`carlink serve` with all roles on the given database and broker; with `embedded`, the amqtt broker runs
    in this process as in `carlink demo`. Uses the event loop uvicorn picks (uvloop when installed)."""
    import logging

    import uvicorn

    from carlink.app import create_app
    from carlink.gateway.embedded import EmbeddedBroker
    from carlink.protocol.transport import BrokerAddress
    from carlink.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    settings = Settings(
        database_url=config["database_url"],
        mqtt_url=config["broker_url"],
        mqtt_topic_prefix=PREFIX,
        base_url=f"http://127.0.0.1:{config['port']}",
        secret_key=config["secret"],
        log_level="WARNING",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, migrate=False),
            host="127.0.0.1",
            port=config["port"],
            log_level="warning",
            lifespan="on",
        )
    )

    async def serve() -> None:
        broker = None
        if config["embedded"]:
            address = BrokerAddress.parse(config["broker_url"])
            broker = EmbeddedBroker(secret=config["secret"], prefix=PREFIX, port=address.port)
            await broker.start()
        try:
            await server.serve()
        finally:
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.stop()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(serve())


# --- the fleet process ------------------------------------------------------------------------------------


async def run_fleet(config: dict[str, Any]) -> int:
    """Connects the manifest's cars like `carlink sim --manifest`, answers the baseline's requests, and
    reports on stdout: `rss KiB` before the cars, `connected n` as they come, `ready KiB` when all are up."""
    from carlink.gateway.credentials import GATEWAY_USER, gateway_password
    from carlink.protocol.transport import BrokerAddress
    from carlink.sim.fleet import Fleet, Manifest

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    manifest = Manifest.load(Path(config["manifest"]))
    say(f"rss {rss_kb()}")
    # Cars report once when they connect; no periodic telemetry in the window, so the timed path is the
    # commands alone and runs are comparable.
    fleet = Fleet(manifest, report_interval=24 * 3600.0)
    address = BrokerAddress.parse(manifest.broker_url)
    ready = asyncio.Event()
    responder: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(
            fleet.start(concurrency=100, timeout=config["timeout"], progress=lambda n: say(f"connected {n}")),
            config["timeout"],
        )
        password = gateway_password(config["secret"])
        responder = asyncio.create_task(echo_responder(address, GATEWAY_USER, password, ready))
        await asyncio.wait_for(ready.wait(), 30)
        say(f"ready {rss_kb()}")
        await asyncio.Event().wait()  # until the benchmark sends SIGTERM
    except asyncio.CancelledError:
        return 0
    except Exception as exc:
        say(f"failed {type(exc).__name__}: {exc}")
        return 1
    finally:
        if responder is not None:
            responder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await responder
        await _stop_cars(fleet)
    return 0


async def echo_responder(address: Any, username: str, password: str, ready: asyncio.Event) -> None:
    """The baseline's answering side: each request is answered at once, in its own task, so that one
    responder does not serialise requests that the cars would answer in parallel."""
    from carlink.protocol.transport import make_client

    client = make_client(
        address,
        username=username,
        password=password,
        identifier=f"bench-responder-{secrets.token_hex(4)}",
        max_inflight_messages=1000,
    )
    reply = b"a" * REPLY_BYTES
    pending: set[asyncio.Task[None]] = set()
    async with client:
        await client.subscribe(f"{PREFIX}/bench/req/+", qos=1)
        ready.set()
        async for message in client.messages:
            request_id = str(message.topic).rsplit("/", 1)[1]
            task = asyncio.create_task(
                client.publish(f"{PREFIX}/bench/resp/{request_id}", reply, qos=1, timeout=10)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)


async def _stop_cars(fleet: Any) -> None:
    """Drops the connections without 'offline' messages: nobody is listening for them any more."""
    cars = list(fleet.cars.values())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(car.stop(graceful=False) for car in cars), return_exceptions=True), 30
        )


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
