"""Checkout race: N simultaneous confirmations of the same cart, repeated, must give one order and one charge.

    python benchmarks/checkout_race.py --rounds 100 --concurrency 50
    python benchmarks/checkout_race.py --rounds 100 --concurrency 50 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Each round the owner of a demo car puts a paid one-year service in the cart through the JSON API, reads the
cart's revision, and sends `--concurrency` confirmations of that revision at once (issue 4: "a double
click, a browser retry or two tabs confirming the same cart produce exactly one order and one charge").
The baseline, in the same run, confirms as many carts once each (concurrency 1), and then sends one late
repeat outside the timed part (what one duplicate costs alone); blocks of the two kinds alternate so both
see the same database and background load. The last line on stdout is one JSON object
(rounds, orders, charges, duplicates, orders_per_s, orders_per_s_baseline, ratio, confirm_p50_ms, ...);
progress and a summary go to stderr. benchmarks/README.md explains what is measured and the results.

Two processes, so that the load generator does not steal the service's event loop:
  service  uvicorn with all roles (api, gateway, jobs), the embedded amqtt broker and the demo's mail sink,
           as `carlink demo` runs them
  this     set-up, sign-in, the HTTP load generator, the counts in the database, and the report
Everything listens on 127.0.0.1 only; rounds, concurrency and time are bounded; the service, the temporary
directory and the PostgreSQL database are cleaned up on success, error, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SCRIPT = Path(__file__).resolve()
PROJECT = SCRIPT.parents[1]
PREFIX = "carlink"
MAX_ROUNDS = 10_000
MAX_CONCURRENCY = 500
# Baseline and race rounds alternate in blocks of this many, so a slow stretch of the machine hits both.
BLOCK = 10
# Untimed rounds of each kind first: connections opened, caches and the database warmed.
WARMUP_ROUNDS = 2
HTTP_TIMEOUT = 30.0
# The sequential client drops a connection idle this long, before uvicorn closes it as idle (5 s): a request
# that meets that close gets ECONNRESET (benchmarks/README.md, "Connections").
CLIENT_KEEPALIVE_S = 3.0
# Problems (unexpected answers) kept verbatim in the JSON for a bug report; the rest are only counted.
KEPT_PROBLEMS = 10
ADDRESS = {
    "name": "Alex Example",
    "street": "Beispielweg 1",
    "postcode": "70173",
    "city": "Stuttgart",
    "country": "DE",
}
# The sandbox's always-paid VISA (carlink.store.payments).
VISA = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
console = Console(stderr=True)


# --- command line -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/checkout_race.py",
        description=(
            "Per round: the owner prepares a cart through the JSON API and sends N simultaneous "
            "POST .../cart/checkout for the same revision; exactly one must place the order (201) and the "
            "rest find it (200), with one order and one charge in the database. The baseline confirms "
            "the same number of carts once each. The last line of stdout is one JSON object."
        ),
        epilog=(
            "Default set-up: `carlink demo`'s (SQLite in a temporary directory, embedded broker). "
            "Exit code 1 on any duplicate order or charge, any round without exactly one order, or a "
            "failed set-up. See benchmarks/README.md."
        ),
    )
    parser.add_argument(
        "--rounds", type=int, default=100, help=f"carts confirmed in the race, 1..{MAX_ROUNDS} (default 100)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=50,
        help=f"simultaneous confirmations of one cart, 1..{MAX_CONCURRENCY} (default 50)",
    )
    parser.add_argument(
        "--database-url",
        help=(
            "a PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test: a fresh database "
            "carlink_bench_<random> is created on it and dropped afterwards (the named database is only "
            "used to connect). Default: SQLite in a temporary directory"
        ),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds for the whole run; no round starts after it and what is done is reported (600)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is None:
        if not 1 <= args.rounds <= MAX_ROUNDS:
            parser.error(f"--rounds must be between 1 and {MAX_ROUNDS}")
        if not 1 <= args.concurrency <= MAX_CONCURRENCY:
            parser.error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        if args.timeout <= 0:
            parser.error("--timeout must be positive")
        if args.database_url is not None and not args.database_url.startswith(("postgresql", "postgres:")):
            parser.error("--database-url takes a PostgreSQL URL; SQLite is the default")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "service":
        run_service(json.loads(args.role_config))
        return 0
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:  # Ctrl-C: the clean-up has run; the contract still ends with a JSON line
        result = {"benchmark": "checkout_race", "error": "interrupted", "duplicates": 0, "failed_rounds": 0}
    print(json.dumps(result), flush=True)
    failed = "error" in result or result["duplicates"] or result["failed_rounds"]
    return 1 if failed else 0


# --- measurements -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


@dataclass(frozen=True)
class Counts:
    orders: int
    charges: int
    contracts: int

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.orders - other.orders, self.charges - other.charges, self.contracts - other.contracts
        )


@dataclass
class Phase:
    """The rounds of one kind (race or baseline): what was sent, what came back, what the database holds."""

    name: str
    concurrency: int
    rounds: int = 0
    failed_rounds: int = 0
    orders: int = 0
    charges: int = 0
    contracts: int = 0
    duplicates: int = 0
    confirm_s: float = 0.0  # the bursts only: first confirmation sent -> last answer in
    prepare_s: float = 0.0  # line added and cart read, per round
    service_cpu_s: float = 0.0  # CPU time the service process used during the bursts
    client_cpu_s: float = 0.0  # and this process (the load generator)
    machine_busy_s: float = 0.0  # and all cores of the machine together (the database server, others)
    latencies: list[float] = field(default_factory=list)
    repeat_latencies: list[float] = field(default_factory=list)  # baseline only: the late second click
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def orders_per_s(self) -> float | None:
        return round(self.orders / self.confirm_s, 2) if self.orders and self.confirm_s else None

    def summary(self, suffix: str) -> dict[str, Any]:
        """This phase's numbers; the race's under plain names, the baseline's ending in `_baseline`."""
        with_prep = self.confirm_s + self.prepare_s
        numbers = {
            "rounds": self.rounds,
            "orders": self.orders,
            "charges": self.charges,
            "contracts": self.contracts,
            "duplicates": self.duplicates,
            "failed_rounds": self.failed_rounds,
            "orders_per_s": self.orders_per_s,
            "confirm_p50_ms": ms(percentile(self.latencies, 0.50)),
            "confirm_p90_ms": ms(percentile(self.latencies, 0.90)),
            "confirm_p99_ms": ms(percentile(self.latencies, 0.99)),
            "confirm_max_ms": ms(max(self.latencies, default=None)),
            "confirm_s": round(self.confirm_s, 3),
            "repeat_p50_ms": ms(percentile(self.repeat_latencies, 0.50)),
            "repeat_p99_ms": ms(percentile(self.repeat_latencies, 0.99)),
            "prepare_ms_per_round": ms(self.prepare_s / self.rounds) if self.rounds else None,
            "service_cpu_ms_per_order": ms(self.service_cpu_s / self.orders) if self.orders else None,
            "service_cpu_ms_per_confirmation": ms(self.service_cpu_s / len(self.latencies))
            if self.latencies
            else None,
            "service_cpu_share": round(self.service_cpu_s / self.confirm_s, 2) if self.confirm_s else None,
            "client_cpu_share": round(self.client_cpu_s / self.confirm_s, 2) if self.confirm_s else None,
            "machine_cpu_share": round(self.machine_busy_s / self.confirm_s, 2) if self.confirm_s else None,
            "orders_per_s_with_prepare": round(self.orders / with_prep, 2)
            if self.orders and with_prep
            else None,
            "statuses": dict(sorted(self.statuses.items())),
        }
        return {f"{name}{suffix}": value for name, value in numbers.items()}


class SetupFailed(Exception):
    pass


class Answer(NamedTuple):
    """One confirmation's answer: HTTP status (or the transport error's name), the order, its state."""

    status: int | str
    order_id: Any
    state: Any
    latency_s: float


@dataclass(frozen=True)
class Car:
    vin: str
    offer_id: int
    service_code: str


class Shopper:
    """The owner's phone app: cart, review, and (in the race) many confirmations of one revision at once."""

    def __init__(self, http: httpx.AsyncClient, counter: CountingDatabase, service_pid: int) -> None:
        self.http = http
        self.counter = counter
        self.service_pid = service_pid
        self.problems: list[dict[str, Any]] = []

    def problem(self, **details: Any) -> None:
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append(details)

    async def prepare_car(self, vin: str, payment_method_id: int) -> Car:
        """Once per car: a paid one-year offer to buy every round, the billing address and the card."""
        response = await self.http.get(f"/api/v1/vehicles/{vin}/store")
        _expect(response, 200, f"GET store of {vin}")
        store = response.json()
        if not store.get("can_buy"):
            raise SetupFailed(f"the owner cannot buy for {vin}")
        offer_id, code = _paid_one_year_offer(store)
        _expect(await self.http.put(f"/api/v1/vehicles/{vin}/cart/billing", json=ADDRESS), 200, "PUT billing")
        _expect(
            await self.http.put(
                f"/api/v1/vehicles/{vin}/cart/payment-method", json={"payment_method_id": payment_method_id}
            ),
            200,
            "PUT payment-method",
        )
        return Car(vin, offer_id, code)

    async def round(self, phase: Phase, car: Car, index: int) -> None:
        """One cart, confirmed `phase.concurrency` times at once; checked by the answers and the database."""
        prepared = time.perf_counter()
        cart = await self.prepare_cart(phase, car, index)
        phase.prepare_s += time.perf_counter() - prepared
        phase.rounds += 1
        if cart is None:
            phase.failed_rounds += 1
            return
        async with self.connections(phase.concurrency) as clicks:
            before = await self.counter.counts()
            cpu = cpu_seconds(self.service_pid), time.process_time(), machine_busy_seconds()
            answers, burst = await self.confirm(clicks, car.vin, int(cart["revision"]), phase.concurrency)
            phase.confirm_s += burst
            phase.service_cpu_s += cpu_seconds(self.service_pid) - cpu[0]
            phase.client_cpu_s += time.process_time() - cpu[1]
            phase.machine_busy_s += machine_busy_seconds() - cpu[2]
            phase.latencies.extend(answer.latency_s for answer in answers)
            if phase.concurrency == 1:
                # A late second click on its own, outside the timed burst: what one repeat costs alone.
                late, _ = await self.confirm(clicks, car.vin, int(cart["revision"]), 1)
                phase.repeat_latencies.append(late[0].latency_s)
                answers += late
            made = await self.counter.counts() - before
        phase.orders += made.orders
        phase.charges += made.charges
        phase.contracts += made.contracts
        phase.duplicates += max(0, made.orders - 1) + max(0, made.charges - 1)
        phase.statuses.update(str(answer.status) for answer in answers)  # the late repeats' too
        trouble = _judge(answers, made, len(cart["lines"]))
        if trouble:
            phase.failed_rounds += 1
            self.problem(
                phase=phase.name,
                round=index,
                vin=car.vin,
                revision=cart["revision"],
                trouble=trouble,
                statuses=dict(Counter(str(answer.status) for answer in answers)),
                order_ids=sorted({str(answer.order_id) for answer in answers}),
                states=sorted({str(answer.state) for answer in answers}),
                made={"orders": made.orders, "charges": made.charges, "contracts": made.contracts},
            )

    async def prepare_cart(self, phase: Phase, car: Car, index: int) -> dict[str, Any] | None:
        """The line in the cart and the cart as the review shows it; None (and a problem) when that fails."""
        try:
            response = await self.http.post(
                f"/api/v1/vehicles/{car.vin}/cart/lines", json={"offer_id": car.offer_id}
            )
            if response.status_code == 200:
                response = await self.http.get(f"/api/v1/vehicles/{car.vin}/cart")
        except httpx.HTTPError as exc:
            self.problem(
                phase=phase.name, round=index, vin=car.vin, step="prepare", transport_error=repr(exc)
            )
            return None
        cart: dict[str, Any] = response.json() if response.status_code == 200 else {}
        if cart.get("next_step") == "review":
            return cart
        self.problem(
            phase=phase.name,
            round=index,
            vin=car.vin,
            step="prepare",
            request=f"{response.request.method} {response.request.url.path}",
            status=response.status_code,
            body=response.text[:500],
        )
        return None

    @contextlib.asynccontextmanager
    async def connections(self, count: int) -> AsyncIterator[httpx.AsyncClient]:
        """`count` connections of the owner's, opened just now (a cheap GET /health each) so the burst
        neither pays for opening them nor meets a connection that uvicorn is closing as idle."""
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(
            base_url=self.http.base_url, headers=self.http.headers, timeout=HTTP_TIMEOUT, limits=limits
        ) as clicks:
            await asyncio.gather(*(clicks.get("/health") for _ in range(count)))
            yield clicks

    async def confirm(
        self, clicks: httpx.AsyncClient, vin: str, revision: int, copies: int
    ) -> tuple[list[Answer], float]:
        """`copies` confirmations of one revision at once, and the wall time of the burst."""
        url = f"/api/v1/vehicles/{vin}/cart/checkout"
        body = {"revision": revision}

        async def one() -> Answer:
            sent = time.perf_counter()
            try:
                response = await clicks.post(url, json=body)
            except httpx.HTTPError as exc:
                self.problem(request=f"POST {url} {json.dumps(body)}", transport_error=repr(exc))
                return Answer(type(exc).__name__, None, None, time.perf_counter() - sent)
            latency = time.perf_counter() - sent
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if response.status_code not in (200, 201):
                self.problem(
                    request=f"POST {url} {json.dumps(body)}",
                    status=response.status_code,
                    body=response.text[:500],
                )
            return Answer(response.status_code, answer.get("id"), answer.get("state"), latency)

        started = time.perf_counter()
        answers = await asyncio.gather(*(one() for _ in range(copies)))
        return list(answers), time.perf_counter() - started


def _judge(answers: list[Answer], made: Counts, lines: int) -> str:
    """What is wrong with a round, in words; empty when it is right."""
    wrong = []
    statuses = Counter(answer.status for answer in answers)
    if statuses[201] != 1:
        wrong.append(f"{statuses[201]} answers 201 (want exactly 1)")
    if statuses[200] != len(answers) - 1:
        wrong.append(f"{len(answers) - statuses[201] - statuses[200]} answers neither 200 nor 201")
    if len({answer.order_id for answer in answers}) != 1:
        wrong.append("different order ids")
    if {answer.state for answer in answers} != {"confirmed"}:
        wrong.append("not every answer says confirmed")
    if made != Counts(1, 1, lines):
        wrong.append(
            f"database gained {made.orders} orders, {made.charges} charges, {made.contracts} contracts"
        )
    return "; ".join(wrong)


def _paid_one_year_offer(store: dict[str, Any]) -> tuple[int, str]:
    """A paid, one-off one-year offer (remote services when sold): a VIN can hold many contracts of it."""
    candidates = [
        (int(offer["id"]), str(service["code"]))
        for service in store["services"]
        if not service.get("carrier_run")
        for offer in service["offers"]
        if offer["term"] == "P1Y"
        and not offer["trial"]
        and not offer["recurring"]
        and offer["price"]["amount_minor"] > 0
    ]
    if not candidates:
        raise SetupFailed(f"no paid one-year offer in the store of {store.get('vin')}")
    return next((c for c in candidates if c[1] == "remote-services"), candidates[0])


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise SetupFailed(f"{what}: HTTP {response.status_code} {response.text[:300]}")


class CountingDatabase:
    """Counts orders, sandbox charges and contracts, read straight from the service's database."""

    def __init__(self, database_url: str) -> None:
        from carlink.db.base import Database

        self.db = Database(database_url)

    async def counts(self) -> Counts:
        from sqlalchemy import func, select

        from carlink.store.models import Contract, Order
        from carlink.store.payments import SandboxCharge

        async with self.db.session() as session:
            found = [
                int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Order, SandboxCharge, Contract)
            ]
        return Counts(*found)

    async def close(self) -> None:
        await self.db.dispose()


# --- the benchmark process --------------------------------------------------------------------------------


@dataclass
class Child:
    """The service process: dies with us (PR_SET_PDEATHSIG) and is stopped by us on the way out."""

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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its threads so far, from /proc (Linux); 0 when unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling and waiting for I/O, from /proc/stat; 0 unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def rss_kb(pid: int | None = None) -> int:
    """Resident memory of a process from /proc (Linux), in KiB; 0 when unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; a failed set-up or an interruption still yields a JSON object, with `error`."""
    race = Phase("race", args.concurrency)
    baseline = Phase("baseline", 1)
    head: dict[str, Any] = {
        "benchmark": "checkout_race",
        "database": "sqlite" if args.database_url is None else "postgresql",
        "concurrency": args.concurrency,
        "rounds_requested": args.rounds,
    }
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = time.monotonic()
    deadline = started + args.timeout
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    problems: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    try:
        with progress:
            await _run(args, details, race, baseline, problems, progress, deadline)
    except SetupFailed as exc:
        head["error"] = str(exc)
        console.print(f"[red]set-up failed:[/red] {exc}")
    except (asyncio.CancelledError, KeyboardInterrupt):
        head["error"] = "interrupted"
        console.print("[yellow]interrupted; cleaned up[/yellow]")
    except Exception as exc:  # a bug of ours or a dead service: still a JSON line, and the traceback
        head["error"] = f"{type(exc).__name__}: {exc}"
        console.print_exception()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    result = {**head, **report(race, baseline), **details, "problems": problems}
    result["time_limited"] = race.rounds < args.rounds and "error" not in result
    result["total_s"] = round(time.monotonic() - started, 1)
    result.update(
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=f"{os.cpu_count()} cpu, {host.system()} {host.release()}",
        python=host.python_version(),
        load_avg_1m=round(os.getloadavg()[0], 2),
    )
    print_summary(result, race, baseline)
    return result


def report(race: Phase, baseline: Phase) -> dict[str, Any]:
    """The JSON line's measurements: the race's under plain names, the baseline's ending in `_baseline`."""
    out = race.summary("")
    # Duplicates and failed rounds of either phase (and of the warm-up) fail the run.
    out["duplicates"] = race.duplicates + baseline.duplicates
    out["failed_rounds"] = race.failed_rounds + baseline.failed_rounds
    out["orders_per_s_baseline"] = baseline.orders_per_s
    # Race time per order over baseline time per order: what N-1 duplicate confirmations cost.
    out["ratio"] = (
        round(baseline.orders_per_s / race.orders_per_s, 2)
        if race.orders_per_s and baseline.orders_per_s
        else None
    )
    out.update(baseline.summary("_baseline"))
    out["race_duplicates"] = race.duplicates
    out["race_failed_rounds"] = race.failed_rounds
    return out


async def _run(
    args: argparse.Namespace,
    details: dict[str, Any],
    race: Phase,
    baseline: Phase,
    problems: list[dict[str, Any]],
    progress: Progress,
    deadline: float,
) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        step = progress.add_task("database, demo world, service", total=3)
        database_url = await create_database(args.database_url, workdir, cleanup)
        progress.advance(step)
        await seed(database_url)
        progress.advance(step)
        service = await start_service(database_url, secret, workdir)
        cleanup.push_async_callback(service.stop)
        base_url = await wait_ready(service, timeout=90)
        progress.advance(step)

        counter = CountingDatabase(database_url)
        cleanup.push_async_callback(counter.close)
        # The owner's sequential steps (sign-in, cart); each burst gets its own connections (Shopper).
        limits = httpx.Limits(max_connections=1, keepalive_expiry=CLIENT_KEEPALIVE_S)
        http = httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT, limits=limits)
        http = await cleanup.enter_async_context(http)
        shopper = Shopper(http, counter, service.process.pid)
        try:
            await measure(args, shopper, race, baseline, progress, deadline)
        finally:
            problems.extend(shopper.problems)
            if shopper.problems:  # the service's side of the story, before its log goes with the workdir
                details["service_log_tail"] = service.tail(40)
        if service.process.returncode is not None:
            raise SetupFailed(f"the service died ({service.process.returncode}):\n{service.tail()}")
        total = await counter.counts()
        details.update(
            db_orders=total.orders,
            db_charges=total.charges,
            db_contracts=total.contracts,
            service_rss_mb=round(rss_kb(service.process.pid) / 1024, 1),
            setup=describe_setup(args),
        )


async def measure(
    args: argparse.Namespace,
    shopper: Shopper,
    race: Phase,
    baseline: Phase,
    progress: Progress,
    deadline: float,
) -> None:
    """Sign-in and carts once; warm-up; then blocks of baseline and race rounds until done or the deadline."""
    from carlink.demo import world

    token = await oidc_login(shopper.http, world.OWNER, world.PASSWORD)
    shopper.http.headers["Authorization"] = f"Bearer {token}"
    card = await shopper.http.post("/api/v1/store/payment-methods", json=VISA)
    _expect(card, 201, "POST payment-methods")
    cars = [await shopper.prepare_car(car.vin, int(card.json()["id"])) for car in world.DEMO_CARS]

    warm = Phase("race warm-up", args.concurrency), Phase("baseline warm-up", 1)
    with_warmup = progress.add_task("warm-up", total=2 * WARMUP_ROUNDS)
    for index in range(WARMUP_ROUNDS):
        for phase in warm:
            await shopper.round(phase, cars[index % len(cars)], index)
            progress.advance(with_warmup)
    for phase, real in zip(warm, (race, baseline), strict=True):
        # Warm-up rounds are not timed, but a duplicate or a failure in them still counts.
        real.duplicates += phase.duplicates
        real.failed_rounds += phase.failed_rounds

    bars = {
        baseline.name: progress.add_task("baseline: 1 confirmation per cart", total=args.rounds),
        race.name: progress.add_task(f"race: {args.concurrency} confirmations per cart", total=args.rounds),
    }
    done = 0
    while done < args.rounds:
        block = range(done, min(done + BLOCK, args.rounds))
        for phase in (baseline, race):
            for index in block:
                if time.monotonic() >= deadline:
                    return
                await shopper.round(phase, cars[index % len(cars)], index)
                progress.advance(bars[phase.name])
        done = block.stop


# --- set-up ----------------------------------------------------------------------------------------------


async def create_database(server_url: str | None, workdir: Path, cleanup: contextlib.AsyncExitStack) -> str:
    """A fresh, migrated database: a SQLite file in the work directory, or a PostgreSQL database we drop."""
    from carlink.db.migrate import upgrade

    if server_url is None:
        url = f"sqlite+aiosqlite:///{workdir / 'carlink.db'}"
    else:
        import asyncpg

        server, _, _ = server_url.rpartition("/")
        server = server.replace("postgresql+asyncpg://", "postgresql://", 1).replace(
            "postgres://", "postgresql://", 1
        )
        admin_url = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        name = f"carlink_bench_{secrets.token_hex(6)}"
        try:
            admin = await asyncpg.connect(admin_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise SetupFailed(f"PostgreSQL at {server_url} is not reachable: {exc}") from exc
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

        async def drop() -> None:
            admin = await asyncpg.connect(admin_url, timeout=10)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()

        cleanup.push_async_callback(drop)
        url = f"{server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await upgrade(url)
    return url


async def seed(database_url: str) -> None:
    """The demo world: owner@example.com and the three demo cars, as `carlink demo` has them."""
    from carlink.db.base import Database
    from carlink.demo import world

    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await world.seed(session)
    finally:
        await db.dispose()


async def start_service(database_url: str, secret: str, workdir: Path) -> Child:
    log = workdir / "service.log"
    config = {"database_url": database_url, "secret": secret, "workdir": str(workdir)}
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--role",
            "service",
            "--role-config",
            json.dumps(config),
            cwd=PROJECT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            preexec_fn=_die_with_parent,
        )
    return Child(process, log)


async def wait_ready(service: Child, timeout: float) -> str:
    """The service says its port, then answers /ready (database reachable, gateway on the broker)."""
    assert service.process.stdout is not None
    try:
        line = await asyncio.wait_for(service.process.stdout.readline(), timeout)
    except TimeoutError as exc:
        raise SetupFailed(f"the service did not start within {timeout:.0f} s:\n{service.tail()}") from exc
    word, _, port = line.decode().strip().partition(" ")
    if word != "port":
        await service.process.wait()
        raise SetupFailed(f"the service exited ({service.process.returncode}):\n{service.tail()}")
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise SetupFailed(f"the service exited ({service.process.returncode}):\n{service.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/ready")).status_code == 200:
                    return base_url
            await asyncio.sleep(0.2)
    raise SetupFailed(f"the service was not ready within {timeout:.0f} s:\n{service.tail()}")


async def oidc_login(http: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token from the real authorization-code flow with PKCE, as the app gets one."""
    from carlink.identity.tokens import pkce_s256

    verifier = secrets.token_urlsafe(48)
    redirect_uri = "carlink://callback"
    try:
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
    except (KeyError, ValueError, httpx.HTTPError) as exc:
        raise SetupFailed(f"sign-in of {email} failed: {type(exc).__name__} {exc}") from exc


def describe_setup(args: argparse.Namespace) -> str:
    from importlib.metadata import version

    database = (
        "SQLite (WAL) in a temporary directory" if args.database_url is None else "PostgreSQL (asyncpg)"
    )
    return (
        f"{database}; service: uvicorn {version('uvicorn')}, all roles, one process, embedded amqtt "
        f"{version('amqtt')} broker and the demo's SMTP sink in it; load generator: httpx {version('httpx')} "
        f"in this process; {args.concurrency} confirmations per cart, blocks of {BLOCK} baseline and "
        f"{BLOCK} race rounds alternating, {WARMUP_ROUNDS} untimed warm-up rounds of each"
    )


def print_summary(result: dict[str, Any], race: Phase, baseline: Phase) -> None:
    table = Table(title=f"checkout race, {result['database']}")
    table.add_column("")
    table.add_column("baseline", justify="right")
    table.add_column("race", justify="right")
    rows: list[tuple[str, Callable[[Phase], object]]] = [
        ("confirmations per cart", lambda p: p.concurrency),
        ("rounds", lambda p: p.rounds),
        ("orders / charges / contracts", lambda p: f"{p.orders} / {p.charges} / {p.contracts}"),
        ("duplicates", lambda p: p.duplicates),
        ("failed rounds", lambda p: p.failed_rounds),
        ("answers", lambda p: ", ".join(f"{k}: {v}" for k, v in sorted(p.statuses.items()))),
        ("orders/s (confirm bursts)", lambda p: p.orders_per_s),
        ("confirm p50 / p99 ms", lambda p: _p50_p99(p.latencies)),
        ("late repeat alone p50 / p99 ms", lambda p: _p50_p99(p.repeat_latencies)),
        ("cart preparation ms/round", lambda p: ms(p.prepare_s / p.rounds) if p.rounds else None),
        ("service CPU ms/order", lambda p: ms(p.service_cpu_s / p.orders) if p.orders else None),
        ("cores used: service / client / machine", _shares),
    ]
    for label, value in rows:
        table.add_row(label, str(value(baseline)), str(value(race)))
    console.print(table)
    failed = result["duplicates"] or result["failed_rounds"] or "error" in result
    verdict = "[red]FAILED[/red]" if failed else "[green]ok[/green]"
    console.print(
        f"{verdict}: ratio {result['ratio']} (race time per order / baseline time per order); "
        f"duplicates {result['duplicates']}; failed rounds {result['failed_rounds']}"
        + (f"; error: {result['error']}" if "error" in result else "")
    )
    for problem in result["problems"]:
        console.print(f"[red]problem[/red] {json.dumps(problem)}")


def _p50_p99(values: list[float]) -> str:
    return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.99))}" if values else "-"


def _shares(phase: Phase) -> str:
    if not phase.confirm_s:
        return "-"
    used = (phase.service_cpu_s, phase.client_cpu_s, phase.machine_busy_s)
    return " / ".join(f"{seconds / phase.confirm_s:.2f}" for seconds in used)


# --- the service process ----------------------------------------------------------------------------------


def run_service(config: dict[str, Any]) -> None:
    """`carlink demo`'s service without the fleet: all roles, the embedded broker and the mail sink in one
    process, on the event loop uvicorn picks (uvloop when installed). Says `port N` on stdout once bound."""
    import logging
    import socket

    from uvicorn.loops.auto import auto_loop_factory

    from carlink.app import create_app
    from carlink.demo.mailbox import MailSink
    from carlink.gateway.embedded import EmbeddedBroker
    from carlink.server import server as http_server
    from carlink.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    async def serve() -> None:
        broker = EmbeddedBroker(secret=config["secret"], prefix=PREFIX)
        await broker.start()
        mail = MailSink(Path(config["workdir"]) / "mail")
        await mail.start()
        # Bound here and handed to uvicorn, so no other process can take the port in between.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        settings = Settings(
            database_url=config["database_url"],
            mqtt_url=broker.url,
            mqtt_topic_prefix=PREFIX,
            base_url=f"http://127.0.0.1:{port}",
            secret_key=config["secret"],
            smtp_url=mail.url,
            log_level="WARNING",
        )
        server = http_server(create_app(settings, migrate=False), host="127.0.0.1", port=port)
        sys.stdout.write(f"port {port}\n")
        sys.stdout.flush()
        try:
            await server.serve(sockets=[listener])
        finally:
            with contextlib.suppress(Exception):
                await broker.stop()
            await mail.stop()

    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(serve())


if __name__ == "__main__":
    sys.exit(main())
