"""Scale-out: two gateways split the cars' traffic; one is killed mid-run; commands and alarms keep flowing.

    python benchmarks/scale_out.py --vehicles 10000
    python benchmarks/scale_out.py --vehicles 200 --commands 100 --alarms 6     # a quick look

The deployment of docs/operations.md on one machine: PostgreSQL (a fresh database, dropped afterwards),
our own Mosquitto (carlink's accounts and ACL, a free loopback port), and four `carlink serve` instances
configured by CARLINK_* variables: `--role api`, `--role jobs`, and two `--role gateway` that share the
cars' uplinks through the MQTT 5 shared subscription `$share/carlink-gw/...` (CARLINK_MQTT_SHARED_GROUP).
N simulated cars (`carlink.sim.fleet.Fleet`) run in one more process.

While a phone app (httpx, signed in through the real authorization-code flow) sends remote commands through
the api instance and simulated cars raise theft alarms, this script kills gateway-1 with SIGKILL after a
share of the commands (--kill-at), right after a burst of alarms, so that acks and alarms are in flight in
it when it dies. What must hold (issue 9, point 5): every command the api accepted ends `performed` and no
car executes a command id twice; every alarm a car raised is in the SOC queue exactly once at the end.

The baseline is the same run before the kill: `ratio_p99 = cmd_p99 after the kill / cmd_p99 before it`.
The last line on stdout is one JSON object; progress goes to stderr. benchmarks/README.md explains the
fields and the results. Everything listens on 127.0.0.1 only; every phase is bounded in count and in time;
processes, temporary files and the database are cleaned up on success, error, Ctrl-C and SIGTERM.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import alarm_latency as al  # benchmarks/ is on sys.path when a script in it runs
import httpx
import remote_commands as rc
from rich.table import Table

SCRIPT = Path(__file__).resolve()
GROUP = "carlink-gw"
KILLED = "gateway-1"
# name -> roles of each `carlink serve` instance of the deployment
INSTANCES = {"api": ["api"], "jobs": ["jobs"], "gateway-1": ["gateway"], "gateway-2": ["gateway"]}
# A command whose ack died with the gateway ends when the jobs role re-sends it (3, 6, 12, 24, 48 s after it
# was accepted) and the car answers with its recorded outcome; it expires after CARLINK_COMMAND_TTL_SECONDS
# (60 s). The phone keeps asking until then, and a little longer.
FINAL_WAIT_S = 75.0
FINAL_STATES = frozenset({"performed", "error", "expired"})
console = rc.console


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/scale_out.py",
        description=(
            "Two `carlink serve --role gateway` instances share N simulated cars through MQTT 5 shared "
            "subscriptions on Mosquitto, beside one api and one jobs instance, on PostgreSQL. Commands "
            "(HTTP) and theft alarms (cars) flow while one gateway is killed with SIGKILL; nothing may be "
            "lost. The last line of stdout is one JSON object."
        ),
        epilog="benchmarks/README.md explains what is measured; docs/operations.md the deployment.",
    )
    parser.add_argument("--vehicles", type=int, default=10000, help="simulated cars connected (10000)")
    parser.add_argument("--commands", type=int, default=2000, help="remote commands to send (2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="commands in flight at once (8)")
    parser.add_argument(
        "--alarms", type=int, help="theft alarms to raise, each by its own car (default: 1 %% of the cars)"
    )
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="share of the commands sent before gateway-1 is killed (default 0.5)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=600.0,
        help="seconds for the cars to connect and for the cloud to see them all online (default 600)",
    )
    parser.add_argument(
        "--measure-timeout",
        type=float,
        default=600.0,
        help="seconds for the commands and alarms; what is not done by then counts as lost (default 600)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is None:
        if args.alarms is None:
            args.alarms = max(2, args.vehicles // 100)
        if args.commands < 2 or args.concurrency < 1:
            parser.error("--commands must be at least 2 and --concurrency at least 1")
        if args.alarms < 2 or args.alarms > args.vehicles // 2:
            parser.error("--alarms must be at least 2 and at most half the cars")
        if not 0 < args.kill_at < 1:
            parser.error("--kill-at must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "cars":
        return asyncio.run(run_cars(json.loads(args.role_config)))
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:  # Ctrl-C: the clean-up has run; the contract still ends with a JSON line
        result = {"benchmark": "scale_out", "vehicles": args.vehicles, "error": "interrupted"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


# --- the benchmark process --------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; a set-up failure still yields a JSON object, with `error`."""
    result: dict[str, Any] = {
        "benchmark": "scale_out",
        "vehicles": args.vehicles,
        "concurrency": args.concurrency,
        "commands_requested": args.commands,
        # The contract's keys are always there; null when a failed set-up left nothing to measure.
        **dict.fromkeys(
            (
                "commands",
                "commands_lost",
                "commands_duplicated",
                "alarms",
                "alarms_lost",
                "cmd_p99_ms",
            )
        ),
    }
    await rc.run_phases(result, lambda phase: _run(args, result, phase))
    if "error" not in result:
        print_summary(result)
    return result


async def _run(args: argparse.Namespace, result: dict[str, Any], phase: rc.Phase) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        result["load_avg_1m_before"] = round(os.getloadavg()[0], 2)
        database_url = await rc.create_database("postgres", workdir, cleanup)
        with phase.bar(f"seeding {args.vehicles} fleet cars (PostgreSQL)", None):
            seeded = time.monotonic()
            vins, manifest = await rc.seed(database_url, secret, args.vehicles)
            result["seed_s"] = round(time.monotonic() - seeded, 1)
        broker_url, broker_pid, mosquitto_version = rc.start_broker(
            "mosquitto", workdir, secret, vins, cleanup
        )
        manifest["broker_url"] = broker_url
        manifest_path = workdir / "fleet.json"
        manifest_path.write_text(json.dumps(manifest))
        fleet_vins = [car["vin"] for car in manifest["cars"]]
        # The alarming cars get no commands, so each car's part in the run is plain.
        command_vins, alarm_vins = fleet_vins[: -args.alarms], fleet_vins[-args.alarms :]

        instances = await start_deployment(database_url, broker_url, secret, workdir, cleanup, phase, result)
        cars = await rc.start_child(
            "cars",
            "cars",
            {"manifest": str(manifest_path), "timeout": args.connect_timeout},
            workdir,
            pipe=True,
            script=SCRIPT,
            stdin=True,
        )
        cleanup.push_async_callback(cars.stop)
        connected = time.monotonic()
        fleet_rss = await rc.follow_fleet(cars, len(fleet_vins), phase, args.connect_timeout)
        result["connect_s"] = round(time.monotonic() - connected, 1)
        await rc.wait_online(database_url, fleet_vins, phase, deadline=connected + args.connect_timeout)
        result["online_s"] = round(time.monotonic() - connected, 1)

        api_url = instances["api"][1]
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        async with (
            httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as phone,
            httpx.AsyncClient(base_url=api_url, timeout=30) as soc,
        ):
            token = await rc.oidc_login(phone, "fleet@example.com", "carlink-demo")
            phone.headers["Authorization"] = f"Bearer {token}"
            await rc.portal_sign_in(soc, al.SOC_EMAIL)
            run = Run(args, phone, soc, CarsControl(cars), instances, command_vins, alarm_vins)
            await run.measure(phase)
        result.update(await run.report(database_url))
        result.update(
            sim_rss_mb=round(fleet_rss[1] / 1024, 1),
            instance_rss_mb={
                name: round(rc.rss_kb(child.process.pid) / 1024, 1)
                for name, (child, _) in instances.items()
                if child.process.returncode is None
            },
            broker_rss_mb=round(rc.rss_kb(broker_pid) / 1024, 1) if broker_pid else None,
            setup=describe_setup(args, mosquitto_version),
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            machine=f"{os.cpu_count()} cpu, {rc._memory_gib()} GiB, {host.system()} {host.release()}",
            python=host.python_version(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        for name, (child, _) in instances.items():
            if name != KILLED and child.process.returncode is not None:
                raise rc.SetupFailed(f"{name} died ({child.process.returncode}):\n{child.tail()}")
        if cars.process.returncode is not None:
            raise rc.SetupFailed(f"the cars' process died ({cars.process.returncode}):\n{cars.tail()}")


async def start_deployment(
    database_url: str,
    broker_url: str,
    secret: str,
    workdir: Path,
    cleanup: contextlib.AsyncExitStack,
    phase: rc.Phase,
    result: dict[str, Any],
) -> dict[str, tuple[rc.Child, str]]:
    """The four `carlink serve` instances, started together (as a deployment rolls out) and ready."""
    instances: dict[str, tuple[rc.Child, str]] = {}
    for name, roles in INSTANCES.items():
        env = {
            "CARLINK_PACKAGE_DIR": str(workdir / "packages"),
            # Nothing listens there: a mail the jobs role tries to send stays in the outbox.
            "CARLINK_SMTP_URL": f"smtp://127.0.0.1:{rc.free_port()}",
            # The phone sends many commands to each car in a small run; the rate limit is not under test.
            "CARLINK_COMMANDS_PER_VEHICLE": "100000",
        }
        if roles == ["gateway"]:
            env["CARLINK_MQTT_SHARED_GROUP"] = GROUP
        instances[name] = await rc.start_service(
            database_url,
            broker_url,
            secret,
            embedded=False,
            workdir=workdir,
            cleanup=cleanup,
            roles=roles,
            env=env,
            name=name,
        )
    with phase.bar("starting api, jobs and two gateways (carlink serve --role ...)", None):
        started = time.monotonic()
        await asyncio.gather(*(rc.wait_ready(child, url, timeout=120) for child, url in instances.values()))
        result["start_s"] = round(time.monotonic() - started, 1)
    return instances


class CarsControl:
    """Talks to the cars' process: raise an alarm in a car, count what the cars executed."""

    def __init__(self, cars: rc.Child) -> None:
        self.cars = cars
        self.sent: dict[str, tuple[str, float]] = {}  # VIN -> (the car's alarm id, wall clock before it)
        self.changed = asyncio.Event()
        self._counts: asyncio.Queue[list[int]] = asyncio.Queue()
        self.failure: str | None = None
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.cars.process.stdout is not None
        while line := await self.cars.process.stdout.readline():
            word, _, value = line.decode().strip().partition(" ")
            if word == "sent":
                vin, alarm_id, at = value.split()
                self.sent[vin] = (alarm_id, float(at))
                self.changed.set()
            elif word == "count":
                await self._counts.put([int(n) for n in value.split()])
            elif word == "failed":
                self.failure = value
                self.changed.set()
        self.failure = self.failure or f"the cars' process ended:\n{self.cars.tail()}"
        self.changed.set()

    async def tell(self, line: str) -> None:
        assert self.cars.process.stdin is not None
        self.cars.process.stdin.write(f"{line}\n".encode())
        await self.cars.process.stdin.drain()

    async def wait_sent(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and self.failure is None:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise rc.SetupFailed(f"the cars raised {len(self.sent)} of {count} alarms in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        if self.failure is not None:
            raise rc.SetupFailed(f"the cars failed: {self.failure}")

    async def counts(self) -> tuple[int, int, int, int]:
        """(command executions, distinct command ids executed, executions of an id already executed by
        that car, alarms not yet acknowledged by the cloud), from the simulator's own records."""
        await self.tell("count")
        executed, distinct, duplicated, pending = await asyncio.wait_for(self._counts.get(), 30)
        return executed, distinct, duplicated, pending


@dataclass
class Outcome:
    """One command as the phone saw it: monotonic times of the POST and of the final answer; the wall clock
    at the POST and the monotonic time of its 202, for the breakdown by the times the service records."""

    index: int
    started: float
    finished: float
    state: str
    command_id: str | None = None
    wall: float = 0.0
    accepted: float = 0.0


@dataclass
class Run:
    args: argparse.Namespace
    phone: httpx.AsyncClient
    soc: httpx.AsyncClient
    cars: CarsControl
    instances: dict[str, tuple[rc.Child, str]]
    command_vins: list[str]
    alarm_vins: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    uplinks: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # snapshot -> gateway
    began: float = 0.0
    killed_at: float | None = None  # monotonic
    killed_wall: float | None = None
    ended: float = 0.0
    arrivals: al.Arrivals | None = None
    told: int = 0  # alarms the cars were told to raise

    # --- the timed part -----------------------------------------------------------------------------------

    async def measure(self, phase: rc.Phase) -> None:
        """Warm-up, then the commands with the alarms spread among them; the kill at --kill-at, right after
        a burst of alarms; then until every alarm is stored and acknowledged, bounded."""
        args = self.args
        self.cars.start()
        self.arrivals = al.Arrivals(self.alarm_vins)
        listening = asyncio.Event()
        stream = asyncio.create_task(al.follow_soc_stream(self.soc, self.arrivals, listening))
        try:
            await asyncio.wait_for(listening.wait(), 30)
            await self._warm_up(phase)
            self.uplinks["online"] = await self.scrape_all()
            kill_index = round(args.commands * args.kill_at)
            burst = max(1, args.alarms // 5)
            spread = args.alarms - burst
            # command index -> alarms to raise just before it is sent (the burst goes just before the kill)
            schedule: Counter[int] = Counter(
                kill_index if j < burst else round((j - burst) * args.commands / spread)
                for j in range(args.alarms)
            )
            alarm_vins = iter(self.alarm_vins)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + args.measure_timeout
            self.began = time.monotonic()

            async def one(index: int) -> None:
                for _ in range(schedule.pop(index, 0)):
                    await self.cars.tell(f"alarm {next(alarm_vins)}")
                    self.told += 1
                if index == kill_index:
                    await self.kill(burst)
                self.outcomes.append(await self.command(index))

            with phase.bar(
                f"{args.commands} commands, {args.alarms} alarms, {KILLED} killed at {kill_index}",
                args.commands,
            ) as advance:
                await rc.run_bounded(args.commands, args.concurrency, deadline, one, advance)
            self.ended = time.monotonic()
            if self.killed_at is None:
                raise rc.SetupFailed(f"--measure-timeout ended the run before {KILLED} was killed")
            for index in sorted(schedule):  # commands cut short by the deadline: raise the rest anyway
                for _ in range(schedule[index]):
                    await self.cars.tell(f"alarm {next(alarm_vins)}")
                    self.told += 1
            await self.cars.wait_sent(self.told, 60)
            await self._wait_alarms_settled(phase, deadline)
            self.uplinks["end"] = await self.scrape_all()
        finally:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream

    async def _warm_up(self, phase: rc.Phase) -> None:
        count = 2 * self.args.concurrency
        warm: list[Outcome] = []
        with phase.bar("warm-up", count) as advance:

            async def one(index: int) -> None:
                warm.append(await self.command(index))

            await rc.run_bounded(
                count, self.args.concurrency, asyncio.get_running_loop().time() + 120, one, advance
            )
        if not any(outcome.state == "performed" for outcome in warm):
            raise rc.SetupFailed(f"no warm-up command was performed: {Counter(o.state for o in warm)}")

    async def kill(self, burst: int) -> None:
        """The burst's alarms are on their way (the cars have published them), the gateways busy with them
        and with the commands' acks: now gateway-1 dies without a word."""
        await self.cars.wait_sent(self.told, 30)
        self.uplinks["kill"] = await self.scrape_all()
        child = self.instances[KILLED][0]
        self.killed_wall = time.time()
        self.killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGKILL)
        console.print(f"[yellow]{KILLED} killed (SIGKILL) after a burst of {burst} alarms[/yellow]")

    async def command(self, index: int) -> Outcome:
        """A phone app's view: POST the command, then long-poll until it is final or FINAL_WAIT_S passed."""
        vin = self.command_vins[index % len(self.command_vins)]
        wall, started = time.time(), time.monotonic()
        try:
            response = await self.phone.post(f"/api/v1/vehicles/{vin}/commands", json={"type": "LOCK"})
            accepted = time.monotonic()
        except httpx.HTTPError as exc:
            return Outcome(index, started, time.monotonic(), f"post {type(exc).__name__}")
        if response.status_code != 202:
            return Outcome(
                index, started, time.monotonic(), f"post {response.status_code} {rc._error_code(response)}"
            )
        command_id = str(response.json()["id"])
        state = "accepted"
        while time.monotonic() - started < FINAL_WAIT_S:
            try:
                response = await self.phone.get(
                    f"/api/v1/vehicles/{vin}/commands/{command_id}", params={"wait": 10}
                )
            except httpx.HTTPError as exc:
                state = f"get {type(exc).__name__}"
                await asyncio.sleep(0.5)
                continue
            if response.status_code != 200:
                state = f"get {response.status_code}"
                await asyncio.sleep(0.5)
                continue
            state = str(response.json()["state"])
            if state in FINAL_STATES:
                break
        return Outcome(index, started, time.monotonic(), state, command_id, wall, accepted)

    async def _wait_alarms_settled(self, phase: rc.Phase, deadline: float) -> None:
        """Until the cars hold no unacknowledged alarm (each was stored, then acknowledged), bounded."""
        loop = asyncio.get_running_loop()
        deadline = max(deadline, loop.time() + 60)  # re-sends come every 5 s: a minute is plenty
        with phase.bar("alarms stored and acknowledged", self.told) as advance:
            shown = 0
            while True:
                *_, pending = await self.cars.counts()
                done = self.told - pending
                advance(done - shown)
                shown = done
                if pending == 0 or loop.time() >= deadline:
                    return
                await asyncio.sleep(1.0)

    async def scrape_all(self) -> dict[str, dict[str, float]]:
        """Each live gateway's uplinks handled so far, by kind (its Prometheus counters)."""
        found = {}
        for name in ("gateway-1", "gateway-2"):
            child, url = self.instances[name]
            if child.process.returncode is None:
                with contextlib.suppress(httpx.HTTPError):
                    found[name] = await scrape_uplinks(self.phone, url)
        return found

    # --- the report ---------------------------------------------------------------------------------------

    async def report(self, database_url: str) -> dict[str, Any]:
        executed, distinct, duplicated, pending = await self.cars.counts()
        await self.cars.stop()
        states, resent, twice = await command_states(
            database_url, [o.command_id for o in self.outcomes if o.command_id]
        )
        traces = [
            (o.command_id, o.wall, o.wall + o.accepted - o.started, o.wall + o.finished - o.started)
            for o in self.outcomes
            if o.command_id and o.state == "performed"
        ]
        alarms = await alarm_check(database_url, self.cars.sent)
        assert self.killed_at is not None and self.killed_wall is not None
        kill = self.killed_at
        done = [o for o in self.outcomes if o.state == "performed"]
        before = [o.finished - o.started for o in done if o.finished < kill]
        across = [o for o in self.outcomes if o.started < kill <= o.finished]
        after = [o.finished - o.started for o in done if o.started >= kill]
        accepted = [o for o in self.outcomes if o.command_id]
        lost = sum(1 for o in accepted if states.get(o.command_id or "") != "performed")
        errors = Counter(o.state for o in self.outcomes if o.state != "performed")
        before_s, after_s = kill - self.began, self.ended - kill
        p99_before = rc.ms(rc.percentile(before, 0.99))
        p99_after = rc.ms(rc.percentile(after, 0.99))
        assert self.arrivals is not None
        live = [
            self.arrivals.soc[vin] - at for vin, (_, at) in self.cars.sent.items() if vin in self.arrivals.soc
        ]
        stored = [
            alarms["stored_at"][vin] - at
            for vin, (_, at) in self.cars.sent.items()
            if vin in alarms["stored_at"]
        ]
        # Alarms raised before the kill and stored only after it: those the kill caught on their way.
        caught = [
            alarms["stored_at"][vin] - self.killed_wall
            for vin, (_, at) in self.cars.sent.items()
            if at < self.killed_wall <= alarms["stored_at"].get(vin, 0.0)
        ]
        return {
            "commands": len(self.outcomes),
            "commands_accepted": len(accepted),
            "commands_performed": len(done),
            "commands_lost": lost,
            "commands_duplicated": duplicated,
            "commands_final_states": dict(Counter(states.values())),
            "commands_resent_by_jobs": len(resent),
            "commands_resent_before_kill": sum(
                1 for o in accepted if o.command_id in resent and o.finished < kill
            ),
            "commands_final_twice": twice,
            "car_executions": executed,
            "car_distinct_commands": distinct,
            "error_kinds": dict(errors),
            # Where the time went (remote_commands.breakdown): p50 and p99 of each segment.
            "cmd_breakdown_ms": await rc.breakdown(database_url, traces),
            "commands_over_3s": sum(1 for o in done if o.finished - o.started > 3.0),
            "cmd_p50_ms": rc.ms(rc.percentile([o.finished - o.started for o in done], 0.50)),
            "cmd_p99_ms": rc.ms(rc.percentile([o.finished - o.started for o in done], 0.99)),
            "cmd_max_ms": rc.ms(max((o.finished - o.started for o in done), default=None)),
            "cmd_p50_before_kill_ms": rc.ms(rc.percentile(before, 0.50)),
            "cmd_p99_before_kill_ms": p99_before,
            "cmd_p50_after_kill_ms": rc.ms(rc.percentile(after, 0.50)),
            "cmd_p99_after_kill_ms": p99_after,
            "ratio_p99": round(p99_after / p99_before, 2) if p99_after and p99_before else None,
            "cmd_per_s_before_kill": round(len(before) / before_s, 1) if before_s > 0 else None,
            "cmd_per_s_after_kill": round(len(after) / after_s, 1) if after_s > 0 else None,
            "in_flight_at_kill": len(across),
            "in_flight_at_kill_max_ms": rc.ms(max((o.finished - o.started for o in across), default=None)),
            # From the kill until the last command caught in flight by it had its final state.
            "recovery_s": round(max((o.finished - kill for o in across), default=0.0), 2),
            "alarms": len(self.cars.sent),
            "alarms_lost": len(self.cars.sent) - alarms["in_queue_once"],
            "alarms_stored": alarms["stored"],
            "alarms_unacknowledged": pending,
            "alarms_seen_live": len(live),
            "alarm_p50_ms": rc.ms(rc.percentile(stored, 0.50)),
            "alarm_p99_ms": rc.ms(rc.percentile(stored, 0.99)),
            "alarm_live_p99_ms": rc.ms(rc.percentile(live, 0.99)),
            "alarms_caught_by_kill": len(caught),
            # From the kill until the last of those was stored.
            "alarm_recovery_s": round(max(caught, default=0.0), 2),
            "gateway_uplinks": gateway_shares(self.uplinks),
            "killed": KILLED,
            "kill_after_commands": round(self.args.commands * self.args.kill_at),
            "measure_s": round(self.ended - self.began, 1),
        }


async def scrape_uplinks(http: httpx.AsyncClient, base_url: str) -> dict[str, float]:
    """carlink_uplinks_total by kind, from one instance's /metrics."""
    response = await http.get(f"{base_url}/metrics", timeout=30)
    counts: dict[str, float] = {}
    for line in response.text.splitlines():
        if line.startswith('carlink_uplinks_total{kind="'):
            labels, _, value = line.rpartition(" ")
            counts[labels.split('"')[1]] = float(value)
    return counts


def gateway_shares(snapshots: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, int | None]]:
    """Per gateway: uplinks handled while the cars came online, from then until the kill (the last scrape
    before it), and after it; with `acks` and `alarms` of the timed part."""

    def total(snapshot: str, name: str, kind: str | None = None) -> float | None:
        counts = snapshots.get(snapshot, {}).get(name)
        if counts is None:
            return None
        return counts.get(kind, 0.0) if kind else sum(counts.values())

    def between(first: str, last: str, name: str, kind: str | None = None) -> int | None:
        a, b = total(first, name, kind), total(last, name, kind)
        return None if a is None or b is None else round(b - a)

    shares: dict[str, dict[str, int | None]] = {}
    for name in ("gateway-1", "gateway-2"):
        online = total("online", name)
        shares[name] = {
            "until_online": None if online is None else round(online),
            "timed_until_kill": between("online", "kill", name),
            "after_kill": between("kill", "end", name),
            "acks_until_kill": between("online", "kill", name, "ack"),
            "acks_after_kill": between("kill", "end", name, "ack"),
            "alarms_after_kill": between("kill", "end", name, "alarm"),
        }
    return shares


async def command_states(database_url: str, ids: list[str]) -> tuple[dict[str, str], set[str], int]:
    """The cloud's final state of each command, how many the jobs role had to re-send, and how many were
    recorded final more than once (the audit log has two outcomes: the state went back in between)."""
    from sqlalchemy import func, select

    from carlink.db.base import Database
    from carlink.remote.models import AuditEntry, RemoteCommand

    states: dict[str, str] = {}
    resent: set[str] = set()
    twice = 0
    audited = AuditEntry.detail["command_id"].as_string()
    db = Database(database_url)
    try:
        async with db.session() as session:
            for chunk in range(0, len(ids), 500):
                rows = await session.execute(
                    select(RemoteCommand.id, RemoteCommand.state, RemoteCommand.publish_count).where(
                        RemoteCommand.id.in_(ids[chunk : chunk + 500])
                    )
                )
                for command_id, state, publish_count in rows.all():
                    states[command_id] = state
                    if publish_count:
                        resent.add(command_id)
                twice += len(
                    (
                        await session.execute(
                            select(audited)
                            .where(
                                AuditEntry.action.in_(
                                    ["command.performed", "command.error", "command.expired"]
                                ),
                                audited.in_(ids[chunk : chunk + 500]),
                            )
                            .group_by(audited)
                            .having(func.count() > 1)
                        )
                    ).all()
                )
    finally:
        await db.dispose()
    return states, resent, twice


async def alarm_check(database_url: str, sent: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """Each raised alarm in the SOC queue exactly once: one stored signal with the car's id, filed in the
    car's one open case (security.soc.OPEN_CASES, what the queue shows); and when each was stored."""
    from sqlalchemy import func, select

    from carlink.db.base import Database
    from carlink.garage.models import Vehicle
    from carlink.security.models import Alarm, AlarmSignalRecord
    from carlink.security.soc import OPEN_CASES

    vins = list(sent)
    db = Database(database_url)
    signals: Counter[tuple[str, str]] = Counter()
    filed: dict[tuple[str, str], int | None] = {}
    stored_at: dict[str, float] = {}
    try:
        async with db.session() as session:
            rows = await session.execute(
                select(
                    Vehicle.vin,
                    AlarmSignalRecord.car_alarm_id,
                    AlarmSignalRecord.alarm_id,
                    AlarmSignalRecord.received_at,
                )
                .join(Vehicle, Vehicle.id == AlarmSignalRecord.vehicle_id)
                .where(Vehicle.vin.in_(vins))
            )
            for vin, car_alarm_id, case_id, received_at in rows.all():
                signals[(vin, car_alarm_id)] += 1
                filed[(vin, car_alarm_id)] = case_id
                stored_at[vin] = received_at.timestamp()
            open_cases = dict(
                (
                    await session.execute(
                        select(Vehicle.vin, func.array_agg(Alarm.id))
                        .join(Vehicle, Vehicle.id == Alarm.vehicle_id)
                        .where(Vehicle.vin.in_(vins), OPEN_CASES)
                        .group_by(Vehicle.vin)
                    )
                ).all()
            )
    finally:
        await db.dispose()
    once = 0
    for vin, (alarm_id, _) in sent.items():
        cases = open_cases.get(vin) or []
        if signals[(vin, alarm_id)] == 1 and len(cases) == 1 and filed[(vin, alarm_id)] == cases[0]:
            once += 1
    return {"in_queue_once": once, "stored": sum(signals.values()), "stored_at": stored_at}


def describe_setup(args: argparse.Namespace, mosquitto_version: str) -> str:
    from importlib.metadata import version

    return (
        f"PostgreSQL (asyncpg); Mosquitto {mosquitto_version} (own process, set_tcp_nodelay true); "
        f"carlink serve --role api, --role jobs, 2 x --role gateway (CARLINK_MQTT_SHARED_GROUP={GROUP}), "
        f"uvicorn {version('uvicorn')}; fleet: {args.vehicles} cars (aiomqtt {version('aiomqtt')}) in one "
        f"process; phone: httpx {version('httpx')}, LOCK, concurrency {args.concurrency}; {args.alarms} "
        f"glass-break alarms, a fifth of them as a burst just before {KILLED} is killed (SIGKILL) after "
        f"{args.kill_at:.0%} of the commands"
    )


def print_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"scale-out, {result['vehicles']} cars, {KILLED} killed mid-run ({result['setup']})")
    for column in ("", "before the kill", "after the kill"):
        table.add_column(column)
    table.add_row(
        "command p50 / p99 ms",
        f"{result['cmd_p50_before_kill_ms']} / {result['cmd_p99_before_kill_ms']}",
        f"{result['cmd_p50_after_kill_ms']} / {result['cmd_p99_after_kill_ms']}",
    )
    table.add_row("commands/s", str(result["cmd_per_s_before_kill"]), str(result["cmd_per_s_after_kill"]))
    console.print(table)
    console.print(
        f"commands {result['commands']}: lost {result['commands_lost']}, duplicated "
        f"{result['commands_duplicated']}, re-sent by jobs {result['commands_resent_by_jobs']}; "
        f"{result['in_flight_at_kill']} in flight at the kill, all final {result['recovery_s']} s after it; "
        f"alarms {result['alarms']}: lost {result['alarms_lost']}, p99 {result['alarm_p99_ms']} ms; "
        f"gateways {result['gateway_uplinks']}"
    )


# --- the cars (a child process) ---------------------------------------------------------------------------


async def run_cars(config: dict[str, Any]) -> int:
    """Connects the manifest's cars like `carlink sim --manifest` (reporting as remote_commands' fleet does,
    for `follow_fleet`), then obeys stdin: `alarm VIN` raises a glass-break alarm in that car and answers
    `sent VIN ALARM_ID WALL`; `count` answers `count EXECUTED DISTINCT DUPLICATED PENDING_ALARMS`."""
    from carlink.sim.fleet import Fleet, Manifest

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    manifest = Manifest.load(Path(config["manifest"]))
    rc.say(f"rss {rc.rss_kb()}")
    # Cars report once when they connect; no periodic telemetry, so the timed traffic is the run's own.
    fleet = Fleet(manifest, report_interval=24 * 3600.0)
    try:
        await asyncio.wait_for(
            fleet.start(
                concurrency=100, timeout=config["timeout"], progress=lambda n: rc.say(f"connected {n}")
            ),
            config["timeout"],
        )
        rc.say(f"ready {rc.rss_kb()}")
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            word, _, value = line.decode().strip().partition(" ")
            if word == "alarm":
                at = time.time()
                alarm_id = await fleet[value].trigger_sensor(al.TRIGGER)
                if alarm_id is None:
                    rc.say(f"failed the alarm of {value} was suppressed")
                    return 1
                rc.say(f"sent {value} {alarm_id} {at:.6f}")
            elif word == "count":
                rc.say("count " + " ".join(str(n) for n in executions(fleet)))
    except asyncio.CancelledError:
        return 0
    except Exception as exc:
        rc.say(f"failed {type(exc).__name__}: {exc}")
        return 1
    finally:
        await rc._stop_cars(fleet)
    return 0


def executions(fleet: Any) -> tuple[int, int, int, int]:
    """What the cars did, by their own records: every command execution, the distinct ids, executions of an
    id the same car had executed before (must be 0: docs/protocol.md "Replay and re-send"), and alarms still
    waiting for the cloud's acknowledgement."""
    total = distinct = duplicated = pending = 0
    for car in fleet.cars.values():
        ids = [command.id for command in car.executed]
        total += len(ids)
        distinct += len(set(ids))
        duplicated += len(ids) - len(set(ids))
        pending += len(car.pending_alarms)
    return total, distinct, duplicated, pending


if __name__ == "__main__":
    sys.exit(main())
