"""Many simulated cars in one process, from a fleet manifest (JSON) that the cloud's operator hands out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carlink.sim.car import CarSpec, SimulatedCar


@dataclass(frozen=True)
class Manifest:
    broker_url: str
    prefix: str
    trusted_keys: dict[str, str]
    cars: tuple[CarSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "broker_url": self.broker_url,
            "prefix": self.prefix,
            "trusted_keys": self.trusted_keys,
            "cars": [vars(spec) for spec in self.cars],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            broker_url=data["broker_url"],
            prefix=data["prefix"],
            trusted_keys=dict(data["trusted_keys"]),
            cars=tuple(CarSpec(**car) for car in data["cars"]),
        )

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_json(json.loads(path.read_text()))


class Fleet:
    def __init__(self, manifest: Manifest, **car_options: Any) -> None:
        self.cars = {
            spec.vin: SimulatedCar(
                spec,
                broker_url=manifest.broker_url,
                prefix=manifest.prefix,
                trusted_keys=manifest.trusted_keys,
                **car_options,
            )
            for spec in manifest.cars
        }

    def __getitem__(self, vin: str) -> SimulatedCar:
        return self.cars[vin]

    async def start(
        self, *, concurrency: int = 100, timeout: float = 120.0, progress: Callable[[int], None] | None = None
    ) -> None:
        """Connects every car, at most `concurrency` connection handshakes at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def bring_up(car: SimulatedCar) -> None:
            async with gate:
                await car.start()
                await car.wait_connected(timeout)
            if progress is not None:
                progress(1)

        await asyncio.gather(*(bring_up(car) for car in self.cars.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(car.stop() for car in self.cars.values()), return_exceptions=True)
