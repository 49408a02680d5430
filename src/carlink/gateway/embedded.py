"""The embedded MQTT broker of `carlink demo` (amqtt, in-process), with per-car auth and topic ACL.

Good for a demo-sized fleet (hundreds of cars); benchmarks and production use Mosquitto or EMQX with the
same accounts and ACL (gateway/mosquitto.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from carlink.gateway.credentials import GATEWAY_USER, check_password
from carlink.protocol.topics import VERSION

log = logging.getLogger("carlink.broker")


class CarAuthPlugin(BaseAuthPlugin):
    """Accepts the gateway account and each car's own account; nobody anonymous."""

    @dataclass
    class Config:
        secret: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        username, password = session.username, session.password
        if not username or password is None:
            log.warning("refused anonymous MQTT client %s", session.client_id)
            return False
        secret = self.config.secret
        ok = check_password(secret, username, password.decode() if isinstance(password, bytes) else password)
        if not ok:
            log.warning("refused MQTT client %s: wrong password for %s", session.client_id, username)
        return ok


def car_may(username: str, topic: str, action: Action, prefix: str) -> bool:
    """A car reads only .../{vin}/down/# and writes only .../{vin}/up/# (its user name is its VIN)."""
    if username == GATEWAY_USER:
        return True
    base = f"{prefix}/{VERSION}/{username}/"
    if action == Action.PUBLISH:
        return topic.startswith(base + "up/")
    return topic.startswith(base + "down/")


class CarTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        prefix: str = "carlink"

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if session is None or topic is None or action is None or not session.username:
            return False
        if action == Action.RECEIVE:
            return True  # what a client may subscribe to is checked at SUBSCRIBE
        allowed = car_may(session.username, topic, action, self.config.prefix)
        if not allowed:
            log.warning("ACL refused %s of %s to %s", action.value, topic, session.username)
        return allowed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, *, secret: str, prefix: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port()
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self.port}", "max_connections": 0}},
            "plugins": {
                "carlink.gateway.embedded.CarAuthPlugin": {"secret": secret},
                "carlink.gateway.embedded.CarTopicPlugin": {"prefix": prefix},
            },
        }
        self._broker = Broker(config)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        await self._broker.start()

    async def stop(self) -> None:
        await asyncio.wait_for(self._broker.shutdown(), timeout=10)


def _quiet_amqtt() -> None:
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)


_quiet_amqtt()
__all__ = ["BaseContext", "CarAuthPlugin", "CarTopicPlugin", "EmbeddedBroker", "car_may", "free_port"]
