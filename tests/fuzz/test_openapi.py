"""Schemathesis against the OpenAPI of /api/v1 and the compatibility facade (issue 9, point 3): over real
HTTP on loopback against a running stack, once signed in as the demo owner and once signed out. Every
answer must be documented (status, content type, body schema, headers) and none may be a server error.

Bounded for CI: a few examples per operation and mode (valid and invalid input), fewer on PostgreSQL, whose
stack proves the same document against the other database and broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from carlink.app import create_app
from carlink.demo import world
from carlink.settings import Settings
from tests.fuzz import conformance
from tests.fuzz.conformance import Outcome, Plan
from tests.support.databases import new_sqlite
from tests.support.stack import TAYCAN, Stack, running_stack

FUZZED_PATHS = r"^/(api/v1|app)/"
# The owner's own car, so the authorised branches run and not only "no vehicle … in your garage".
KNOWN = {"vin": TAYCAN}
EVENTS = "GET /api/v1/vehicles/{vin}/events"
# Leaving the car ends it for the rest of the pass: it runs last.
LEAVE_CAR = "DELETE /api/v1/vehicles/{vin}/membership"


# A deeper run by hand: CARLINK_FUZZ_EXAMPLES=50 pytest tests/fuzz/test_openapi.py (docs/testing.md).
DEEPER = int(os.environ.get("CARLINK_FUZZ_EXAMPLES", "0"))


def _examples(stack: Stack, sqlite: int, postgres: int) -> int:
    if DEEPER:
        return DEEPER
    return postgres if stack.settings.database_url.startswith("postgresql") else sqlite


def _summary(outcome: Outcome) -> str:
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(outcome.statuses.items()))
    return f"{len(outcome.operations)} operations, {outcome.requests} requests ({statuses})"


async def _fuzz(stack: Stack, plan: Plan) -> Outcome:
    schema = await asyncio.to_thread(conformance.load, stack.base_url, FUZZED_PATHS)
    # Schemathesis speaks blocking HTTP; the service runs on this event loop, so the fuzzer gets a thread.
    outcome = await asyncio.to_thread(conformance.run, schema, plan)
    print(_summary(outcome), "slowest:", outcome.slowest())
    return outcome


async def test_the_signed_in_owner_gets_only_documented_answers(stack: Stack) -> None:
    token = await stack.token(world.OWNER)
    plan = Plan(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {token}"},
        examples=_examples(stack, sqlite=4, postgres=2),
        known_path_values=KNOWN,
        # DELETE /api/v1/me stays in: it needs the password, which the fuzzer cannot know, so it proves the
        # refusal (and the throttle after wrong passwords) without ending the owner's world.
        no_known_values={EVENTS: "the owner's event stream never ends; tests/integration reads it"},
        last=(LEAVE_CAR,),
    )
    outcome = await _fuzz(stack, plan)
    assert len(outcome.operations) > 90  # the document still lists the whole API
    assert outcome.statuses.get(200, 0) > 40  # the authorised branches ran, not only refusals
    assert not outcome.failures, outcome.report()


@pytest.fixture
async def sqlite_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Signed out, the answers come from identity before any use case touches the database or the
    broker: one stack (the demo's) proves them, and the CI time goes to the signed-in passes."""
    async with running_stack(await new_sqlite(tmp_path), "embedded", tmp_path) as running:
        yield running


async def test_a_signed_out_caller_gets_only_documented_answers(sqlite_stack: Stack) -> None:
    plan = Plan(
        base_url=sqlite_stack.base_url,
        headers={},
        examples=DEEPER or 1,
        known_path_values=KNOWN,
    )
    outcome = await _fuzz(sqlite_stack, plan)
    assert outcome.statuses.get(401, 0) > 30  # the owner's car is refused without a token
    assert not outcome.failures, outcome.report()


def test_every_refusal_in_the_document_has_our_error_body(tmp_path: Path) -> None:
    """Cheap and immediate, beside the fuzzing: every JSON 4xx of /api/v1 and the facade names the error
    body those answers really carry, not FastAPI's default `HTTPValidationError`. (The facade's routes
    validate no parameter, so they never answer 422; FastAPI lists its default 422 for them all the same.)"""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}", secret_key="x" * 32)
    document = create_app(settings).openapi()
    wrong = []
    for path, operations in document["paths"].items():
        if not path.startswith(("/api/v1/", "/app/")):
            continue
        expected = "WireError" if path.startswith("/app/") else "ErrorBody"
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if expected == "WireError" and status == "422":
                    continue
                json_refusal = status.startswith("4") and "application/json" in answer.get("content", {})
                if json_refusal and schema.get("$ref") != f"#/components/schemas/{expected}":
                    wrong.append(f"{method.upper()} {path} {status}")
    assert not wrong, wrong
