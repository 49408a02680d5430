"""Prometheus metrics, served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

COMMANDS = Counter("carlink_commands_total", "Remote commands by type and final state", ["type", "state"])
UPLINKS = Counter("carlink_uplinks_total", "MQTT uplinks handled, by kind", ["kind"])
UPLINKS_REJECTED = Counter("carlink_uplinks_rejected_total", "Malformed or unknown uplinks dropped", ["kind"])
COMMAND_SECONDS = Histogram(
    "carlink_command_seconds",
    "From accepted to the car's final answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ORDERS = Counter("carlink_orders_total", "Store orders by the state they ended in", ["state"])
CONTRACTS_ENDED = Counter("carlink_contracts_ended_total", "Contracts ended, by how", ["how"])
RENEWALS = Counter("carlink_renewals_total", "Subscription renewals, by outcome", ["outcome"])
# Car security (SEC-1, SEC-3): what the theft sensors raised, re-sends answered again, what a mode covered.
ALARMS = Counter("carlink_alarms_total", "Alarm signals stored, by trigger", ["trigger"])
ALARM_DUPLICATES = Counter("carlink_alarm_duplicates_total", "Re-sent alarm signals answered again")
ALARMS_SUPPRESSED = Counter(
    "carlink_alarms_suppressed_total", "Alarm signals a service or transport mode covered", ["mode"]
)
ALARM_STORE_SECONDS = Histogram(
    "carlink_alarm_store_seconds",
    "From the car's alarm time to the signal stored (the car's clock against ours)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
