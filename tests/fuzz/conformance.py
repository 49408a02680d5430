"""Schemathesis over real HTTP: every operation of a served OpenAPI document, fuzzed with valid and invalid
input, each answer checked against what the document promises.

The run is deterministic (`derandomize`) and bounded (a few examples per operation, a time limit per request
and per operation), so it fits the CI budget and a failure found once is found again. Hypothesis stops an
operation at its first failure; the failures of all operations are collected so one run names them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

# The four the issue names, and the ones that make sense for an API that refuses bad input by design:
# the headers an answer documents are sent, invalid input is refused (never a 2xx), a required header left
# out is refused, and a method the path does not take is a 405. (`ignored_auth` needs security schemes in
# the document, which it does not declare yet.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
]
REQUEST_SECONDS = 20.0
DETAIL_CHARS = 2000
# A slow answer is a failure too: an example that takes longer than this (twice, Hypothesis checks) fails.
EXAMPLE_DEADLINE = timedelta(seconds=REQUEST_SECONDS)


@dataclass(frozen=True)
class Plan:
    """What one pass sends: how many examples per operation and mode, which headers, which fixed values."""

    base_url: str
    headers: dict[str, str]
    examples: int
    # Path parameters worth fixing for a share of the examples (a VIN in the caller's garage), so the
    # authorised branches run, not only "no such vehicle".
    known_path_values: dict[str, str] = field(default_factory=dict)
    # operation label -> why it is left out of this pass
    excluded: dict[str, str] = field(default_factory=dict)
    # operation label -> why its fixed-value variant is left out (the generated values still run)
    no_known_values: dict[str, str] = field(default_factory=dict)
    # operation labels run after all others (they change the caller's world: leaving a car)
    last: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    operation: str
    mode: str
    kinds: tuple[str, ...]
    details: str

    def __str__(self) -> str:
        return f"{self.operation} [{self.mode}]: {'; '.join(self.kinds)}"


@dataclass
class Outcome:
    operations: list[str] = field(default_factory=list)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[Finding] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def slowest(self, count: int = 5) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda item: -item[1])[:count]

    def report(self) -> str:
        """One line per failure, then each failure's reproduction (curl) and answer."""
        summary = "\n".join(str(finding) for finding in self.failures)
        return summary + "\n\n" + "\n\n".join(finding.details for finding in self.failures)


def load(base_url: str, paths: str) -> Any:
    """The schema the service serves (not the one the app object would build), narrowed to `paths`."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=REQUEST_SECONDS)
    return schema.include(path_regex=paths)


def run(schema: Any, plan: Plan) -> Outcome:
    outcome = Outcome()
    operations = [result.ok() for result in schema.get_all_operations()]
    named = {*plan.excluded, *plan.no_known_values, *plan.last}
    unknown = named - {operation.label for operation in operations}
    assert not unknown, f"the plan names operations the document does not have: {sorted(unknown)}"
    operations.sort(key=lambda operation: operation.label in plan.last)
    with requests.Session() as session:
        for operation in operations:
            if operation.label in plan.excluded:
                continue
            outcome.operations.append(operation.label)
            started = time.monotonic()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, _strategy(operation, mode, plan), plan, session, outcome, mode)
            outcome.seconds[operation.label] = time.monotonic() - started
    return outcome


def _strategy(operation: Any, mode: GenerationMode, plan: Plan) -> Any:
    generated = operation.as_strategy(generation_mode=mode)
    names = {parameter.name for parameter in operation.path_parameters}
    known = {name: value for name, value in plan.known_path_values.items() if name in names}
    if not known or operation.label in plan.no_known_values:
        return generated
    return st.one_of(generated, operation.as_strategy(generation_mode=mode, path_parameters=known))


def _fuzz(
    operation: Any, strategy: Any, plan: Plan, session: requests.Session, outcome: Outcome, mode: Any
) -> None:
    @settings(
        max_examples=plan.examples,
        derandomize=True,
        database=None,
        deadline=EXAMPLE_DEADLINE,
        # No shrinking: a failure is reported as found, which keeps a failing run as bounded as a passing one.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def example(case: Any) -> None:
        response = case.call(
            base_url=plan.base_url, session=session, headers=plan.headers, timeout=REQUEST_SECONDS
        )
        outcome.requests += 1
        outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
        case.validate_response(
            response,
            checks=CHECKS,
            headers=plan.headers,
            transport_kwargs={"base_url": plan.base_url, "headers": plan.headers, "session": session},
        )

    try:
        example()
    except Unsatisfiable as error:
        # Nothing to make invalid (no parameters, or only free-form strings): the negative mode may have no
        # case. A valid request always exists, so a positive mode without one is a schema the fuzzer cannot
        # serve and the operation would go untested.
        if mode != GenerationMode.NEGATIVE:
            outcome.failures.append(
                Finding(operation.label, mode.value, ("no valid example generated",), repr(error))
            )
    except FailureGroup as group:
        kinds = tuple(sorted({f"{failure.title}" for failure in group.exceptions}))
        outcome.failures.append(Finding(operation.label, mode.value, kinds, str(group)[:DETAIL_CHARS]))
    except Exception as error:  # a request that timed out, a deadline: the operation failed, keep going
        kind = f"{type(error).__name__}: {str(error)[:200]}"
        outcome.failures.append(Finding(operation.label, mode.value, (kind,), repr(error)))
