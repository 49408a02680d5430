"""The embedded MQTT broker of `carlink demo` (amqtt, in-process), with per-car auth and topic ACL.

Good for a demo-sized fleet (hundreds of cars); benchmarks and production use Mosquitto or EMQX with the
same accounts and ACL (gateway/mosquitto.py).
"""

from __future__ import annotations

import asyncio
import functools
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


class _Broker(Broker):
    """amqtt 0.12 sends a connecting client the retained messages matching *any* client's subscriptions (the
    gateway's .../+/up/# among them), so every car learnt every car's connection state. Only the session's
    own subscriptions count here; returning before any await also keeps amqtt's loop over the subscription
    dict from failing when another client subscribes meanwhile."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        subscribers = self._subscriptions.get(subscription[0], [])
        if all(subscriber.client_id != session.client_id for subscriber, _ in subscribers):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)

    def _matches(self, topic: str, a_filter: str) -> bool:
        """amqtt matches every message against every subscription, splitting both each time: with 1,000 cars
        that is 1,000 splits per message. Each filter's rule is worked out once instead: the exact topics
        and the `…/#` prefixes that carlink's cars and gateway use are a comparison; anything else goes to
        amqtt's own matcher."""
        rule = self._rules.get(a_filter)
        if rule is None:
            rule = _filter_rule(a_filter)
            if len(self._rules) < 1_000_000:
                self._rules[a_filter] = rule
        kind, text = rule
        if kind == "exact":
            return topic == text
        if kind == "prefix":
            return topic.startswith(text) or topic == text[:-1]
        return bool(super()._matches(topic, a_filter))

    @functools.cached_property
    def _rules(self) -> dict[str, tuple[str, str]]:
        return {}


def _filter_rule(a_filter: str) -> tuple[str, str]:
    if "+" not in a_filter and "#" not in a_filter:
        return "exact", a_filter
    body = a_filter[:-1]
    if a_filter.endswith("/#") and "+" not in body and "#" not in body and not a_filter.startswith("$"):
        return "prefix", body  # "a/b/#" matches "a/b" and everything below "a/b/"
    return "amqtt", a_filter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, *, secret: str, prefix: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.secret = secret
        self.prefix = prefix
        self._fixed_port = bool(port)
        self.port = port or free_port()
        self._broker = _Broker(self._config())

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}
            },
            "plugins": {
                "carlink.gateway.embedded.CarAuthPlugin": {"secret": self.secret},
                "carlink.gateway.embedded.CarTopicPlugin": {"prefix": self.prefix},
            },
        }

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        for attempt in range(5):
            try:
                await self._broker.start()
                return
            except Exception as exc:  # amqtt wraps the bind error; a chosen free port may be taken meanwhile
                if self._fixed_port or attempt == 4:
                    raise
                log.warning("embedded broker could not bind %s (%s); trying another port", self.port, exc)
                self.port = free_port()
                self._broker = _Broker(self._config())

    async def stop(self) -> None:
        await asyncio.wait_for(self._broker.shutdown(), timeout=10)


def _quiet_amqtt() -> None:
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)


_quiet_amqtt()
__all__ = ["BaseContext", "CarAuthPlugin", "CarTopicPlugin", "EmbeddedBroker", "car_may", "free_port"]
