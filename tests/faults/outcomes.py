"""The scenario × outcome table of the fault-injection suite (issue 9), as a pytest plugin.

Each test records one cell (`Outcome`) in its `user_properties`, which xdist carries from the workers to
the controller with the test's report; the controller prints the table at the end of the run. The plugin is
named in tests/conftest.py (`pytest_plugins`), because under `make test` the xdist controller collects
nothing and so never loads tests/faults/conftest.py.
"""

from __future__ import annotations

import pytest

FAULTS = ("kill -9 service", "restart broker", "restart PostgreSQL")
OUTCOME = "fault_outcome"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the operation a fault-injection test interrupts")


class Outcome:
    """What the scenario saw after recovery, one cell of the table. Recorded by the test before it checks,
    so a failing check still shows what happened."""

    def __init__(self, node: pytest.Item) -> None:
        self.node = node

    def __call__(self, text: str) -> None:
        scenario = self.node.get_closest_marker("scenario")
        fault = self.node.callspec.params["fault"]  # type: ignore[attr-defined]
        cell = (OUTCOME, f"{scenario.args[0] if scenario else self.node.name}\t{fault}\t{text}")
        self.node.user_properties[:] = [p for p in self.node.user_properties if p[0] != OUTCOME] + [cell]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows: dict[tuple[str, str], str] = {}
    for kind in ("passed", "failed"):
        for report in terminalreporter.stats.get(kind, []):
            if getattr(report, "when", "") != "call":
                continue
            for name, value in report.user_properties:
                if name == OUTCOME:
                    scenario, fault, text = str(value).split("\t", 2)
                    rows[(scenario, fault)] = f"{'ok' if kind == 'passed' else 'FAILED'}: {text}"
    if not rows:
        return
    scenarios = sorted({scenario for scenario, _ in rows})
    width = max(len(s) for s in scenarios)
    terminalreporter.section("fault injection: scenario × outcome (issue 9)")
    for scenario in scenarios:
        for fault in FAULTS:
            cell = rows.get((scenario, fault))
            if cell is not None:
                terminalreporter.write_line(f"{scenario:<{width}}  {fault:<18}  {cell}")
