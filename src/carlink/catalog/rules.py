"""Pure catalogue decisions: which services fit a car, which data plan fits a person (CON-4)."""

from __future__ import annotations

from dataclasses import dataclass

from carlink.catalog.models import Service

FUNCTION = "function"  # the kind of a function on demand (FOD-1): ordered per car, charged on activation


def fits(service: Service, model_key: str, engine: str) -> bool:
    """A service fits a car when the model and the engine are among those it names (empty: all)."""
    return (not service.model_keys or model_key in service.model_keys) and (
        not service.engines or engine in service.engines
    )


@dataclass(frozen=True)
class PlanAdvice:
    """How much hotspot data a month a person is likely to use, in MB."""

    low_mb: int
    high_mb: int

    @property
    def wanted_mb(self) -> int:
        return self.high_mb


def recommend_plan(annual_km: int, streaming: bool) -> PlanAdvice:
    """REQ: CON-4 — about 10,000 km a year: 0.5–1 GB a month; 25,000–50,000 km: 2 GB; more than 50,000 km
    with streaming: about 5 GB. Streaming moves a light driver up one step."""
    if annual_km < 0:
        raise ValueError("annual_km must not be negative")
    if annual_km > 50_000 and streaming:
        return PlanAdvice(4096, 5120)
    if annual_km >= 25_000 or (streaming and annual_km > 15_000):
        return PlanAdvice(2048, 2048)
    if streaming:
        return PlanAdvice(1024, 2048)
    return PlanAdvice(512, 1024)
