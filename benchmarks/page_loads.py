"""Page loads of the portal on the demo data: every main page, as the person who sees it, under 100 ms.

    python benchmarks/page_loads.py                      # the default set-up (SQLite)
    python benchmarks/page_loads.py --database postgres

What is timed (carlink issue 8, point 4): the server's answer to a browser's request for each page — from
just before the GET to the last byte of the HTML, over a kept-alive connection, signed in through the
portal's form as the demo person who uses the page (owner, dealer, operator, SOC), in English, German and
Japanese (each person's profile language, set on Login & security, in turn). Static files are cached by
browsers and not counted. Baseline, in the same run
and the same service: `GET /health` (the framework's own round trip without a template or a database
query); ratio_p95 = the slowest page's p95 / the baseline's p95.

Rounds alternate pages and baseline so that both see the same background. The service runs as
remote_commands.py runs it (uvicorn, all roles, SQLite or PostgreSQL, the embedded broker); the demo's cars
are not connected (pages read what the cloud stored). Everything talks to 127.0.0.1; counts and time are
bounded. The last line on stdout is one JSON object: pages, worst_page, worst_p95_ms, baseline_p95_ms,
ratio_p95, under_100ms (true when every page's p95 is below 100 ms).
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import remote_commands as rc  # benchmarks/ is on sys.path when a script in it runs
from rich.table import Table

from carlink.demo import world

console = rc.console
GOAL_MS = 100.0
OWNER, DEALER, OPERATOR, SOC = world.OWNER, world.DEALER, world.OPERATOR, world.SOC_OPERATOR
TAYCAN = world.DEMO_CARS[0].vin  # the demo owner's Taycan
# (who, page) — the portal's main pages and each console's start page.
PAGES: tuple[tuple[str, str], ...] = (
    (OWNER, "/vehicles"),
    (OWNER, f"/vehicles/{TAYCAN}"),
    (OWNER, f"/vehicles/{TAYCAN}/connectivity"),
    (OWNER, f"/vehicles/{TAYCAN}/store"),
    (OWNER, f"/vehicles/{TAYCAN}/services"),
    (OWNER, f"/vehicles/{TAYCAN}/functions"),
    (OWNER, f"/vehicles/{TAYCAN}/security"),
    (OWNER, f"/vehicles/{TAYCAN}/service"),
    (OWNER, "/notifications"),
    (OWNER, "/account"),
    (OWNER, "/privacy"),
    (OWNER, "/contacts"),
    (OWNER, "/help"),
    (OWNER, "/help/search?q=roaming"),
    (DEALER, "/dealer"),
    (OPERATOR, "/operator"),
    (SOC, "/soc"),
)
LANGUAGES = ("en", "de", "ja")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/page_loads.py",
        description="Server time of the portal's main pages on the demo data, against GET /health.",
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--requests", type=int, default=60, help="timed loads per page and language")
    parser.add_argument("--rounds", type=int, default=3, help="page and baseline blocks alternate")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole measurement")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(benchmark(args))
    except KeyboardInterrupt:
        result = {"benchmark": "page_loads", "error": "interrupted"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "page_loads",
        "database": args.database,
        **dict.fromkeys(
            ("pages", "worst_page", "worst_p95_ms", "baseline_p95_ms", "ratio_p95", "under_100ms")
        ),
    }
    await rc.run_phases(result, lambda phase: _within_timeout(args, result, phase))
    if "error" not in result:
        print_summary(result)
    return result


async def _within_timeout(args: argparse.Namespace, result: dict[str, Any], phase: rc.Phase) -> None:
    try:
        await asyncio.wait_for(_run(args, result, phase), args.timeout)
    except TimeoutError as exc:
        raise rc.SetupFailed(f"not done within {args.timeout:g} s") from exc


async def _run(args: argparse.Namespace, result: dict[str, Any], phase: rc.Phase) -> None:
    async with contextlib.AsyncExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="carlink-bench-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        secret = f"bench-{secrets.token_hex(16)}"
        database_url = await rc.create_database(args.database, workdir, cleanup)
        with phase.bar(f"seeding the demo world ({args.database})", None):
            await rc.seed(database_url, secret, 0)
        broker_url, _, _ = rc.start_broker("embedded", workdir, secret, [], cleanup)
        service, base_url = await rc.start_service(
            database_url, broker_url, secret, embedded=True, workdir=workdir, cleanup=cleanup
        )
        with phase.bar("starting the service", None):
            await rc.wait_ready(service, base_url, timeout=90)

        clients: dict[str, httpx.AsyncClient] = {}
        for email in sorted({who for who, _ in PAGES}):
            client = httpx.AsyncClient(base_url=base_url, timeout=30, headers={"Accept": "text/html"})
            cleanup.push_async_callback(client.aclose)
            await rc.portal_sign_in(client, email)
            clients[email] = client
        for who, path in PAGES:  # each page answers 200 before it is timed
            response = await clients[who].get(path)
            if response.status_code != 200:
                raise rc.SetupFailed(f"{path} as {who}: {response.status_code}")

        timings: dict[str, list[float]] = {path: [] for _, path in PAGES}
        baseline: list[float] = []
        per_round = max(1, args.requests // args.rounds)
        total = args.rounds * per_round * (len(PAGES) * len(LANGUAGES) + 1)
        with phase.bar("timing pages and baseline", total) as advance:
            for _ in range(args.rounds):
                for language in LANGUAGES:
                    for client in clients.values():
                        await _speak(client, language)
                    for who, path in PAGES:
                        for _ in range(per_round):
                            timings[path].append(await _timed(clients[who], path))
                            advance()
                for _ in range(per_round):
                    baseline.append(await _timed(clients[OWNER], "/health"))
                    advance()

        per_page = {path: _summary(values) for path, values in timings.items()}
        worst = max(per_page, key=lambda path: per_page[path]["p95_ms"] or 0)
        base = _summary(baseline)
        result.update(
            pages=len(PAGES),
            languages=list(LANGUAGES),
            requests_per_page=len(timings[worst]),
            per_page=per_page,
            worst_page=worst,
            worst_p95_ms=per_page[worst]["p95_ms"],
            baseline_p50_ms=base["p50_ms"],
            baseline_p95_ms=base["p95_ms"],
            ratio_p95=round(per_page[worst]["p95_ms"] / base["p95_ms"], 1) if base["p95_ms"] else None,
            under_100ms=all((page["p95_ms"] or 0) < GOAL_MS for page in per_page.values()),
            setup=f"service: uvicorn, all roles, {args.database}, embedded broker; client: httpx here",
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            machine=f"{os.cpu_count()} cpu, {rc._memory_gib()} GiB, {host.system()} {host.release()}",
            python=host.python_version(),
            load_avg_1m=round(os.getloadavg()[0], 2),
        )
        if service.process.returncode is not None:
            raise rc.SetupFailed(f"the service died ({service.process.returncode}):\n{service.tail()}")


async def _speak(client: httpx.AsyncClient, language: str) -> None:
    """The person's profile language (it wins over the browser's), set on Login & security."""
    import re

    page = await client.get("/account")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if token is None:
        raise rc.SetupFailed(f"no form on /account ({page.status_code})")
    answer = await client.post("/account/language", data={"language": language, "csrf_token": token.group(1)})
    if answer.status_code != 303:
        raise rc.SetupFailed(f"the language {language} was refused ({answer.status_code})")


async def _timed(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    response = await client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise rc.SetupFailed(f"{path} answered {response.status_code}")
    return elapsed


def _summary(values: list[float]) -> dict[str, float | None]:
    return {"p50_ms": rc.ms(rc.percentile(values, 0.50)), "p95_ms": rc.ms(rc.percentile(values, 0.95))}


def print_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"page loads ({result['database']}, en/de/ja)")
    for column in ("page", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for path, row in result["per_page"].items():
        table.add_row(path, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}")
    table.add_row(
        "GET /health (baseline)", f"{result['baseline_p50_ms']:.1f}", f"{result['baseline_p95_ms']:.1f}"
    )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
