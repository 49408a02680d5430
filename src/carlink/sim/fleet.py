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
    # Where cars fetch signed data packages (the cloud's API base URL) and the package root they pin;
    # older manifests have neither: their cars hold deliveries but never download.
    api_url: str | None = None
    trusted_root: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "broker_url": self.broker_url,
            "prefix": self.prefix,
            "trusted_keys": self.trusted_keys,
            "cars": [vars(spec) for spec in self.cars],
        }
        if self.api_url is not None:
            data["api_url"] = self.api_url
        if self.trusted_root is not None:
            data["trusted_root"] = self.trusted_root
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            broker_url=data["broker_url"],
            prefix=data["prefix"],
            trusted_keys=dict(data["trusted_keys"]),
            cars=tuple(CarSpec(**car) for car in data["cars"]),
            api_url=data.get("api_url"),
            trusted_root=data.get("trusted_root"),
        )

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_json(json.loads(path.read_text()))


class Fleet:
    def __init__(self, manifest: Manifest, **car_options: Any) -> None:
        car_options.setdefault("package_url", manifest.api_url)
        car_options.setdefault("trusted_root", manifest.trusted_root)
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
