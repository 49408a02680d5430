"""The running platform: settings, database, broker link, signers and the event hub, shared by all roles."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carlink.db.base import Database
from carlink.gateway.link import CloudLink
from carlink.identity.tokens import TokenIssuer
from carlink.remote.events import EventHub
from carlink.remote.models import RemoteCommand
from carlink.remote.service import CommandSigner
from carlink.settings import Settings

if TYPE_CHECKING:
    from carlink.store.payments import PaymentGateway

log = logging.getLogger("carlink")

ROLES = frozenset({"api", "gateway", "jobs"})


@dataclass
class Platform:
    settings: Settings
    db: Database
    roles: frozenset[str] = ROLES
    hub: EventHub = field(default_factory=EventHub)
    signer: CommandSigner = field(default_factory=CommandSigner)
    issuer: TokenIssuer | None = None
    link: CloudLink | None = None
    # The card provider (store.payments); start_platform sets the sandbox unless one is given.
    gateway: PaymentGateway | None = None

    @property
    def events_over_broker(self) -> bool:
        """Only a split deployment has api instances elsewhere; one process serves its listeners itself."""
        configured = self.settings.events_over_broker
        return self.roles != ROLES if configured is None else configured

    @property
    def tokens(self) -> TokenIssuer:
        assert self.issuer is not None
        return self.issuer

    @property
    def payments(self) -> PaymentGateway:
        assert self.gateway is not None
        return self.gateway

    async def emit(self, vehicle_id: int, event: dict[str, Any]) -> None:
        """Tells this instance's listeners at once, and api instances in other processes via the broker."""
        self.hub.publish(vehicle_id, event)
        if self.events_over_broker and self.link is not None and self.link.connected.is_set():
            payload = json.dumps({"vehicle_id": vehicle_id, "event": event}, default=str).encode()
            await self.link.publish(self.link.topics.events(), payload, qos=0)

    async def dispatch(self, command: RemoteCommand) -> bool:
        """Publishes a recorded command; if the broker is away the jobs role re-sends it."""
        if self.link is None:
            return False
        topic = self.link.topics.down(command.envelope["vin"], "command")
        sent = await self.link.publish(topic, json.dumps(command.envelope, separators=(",", ":")).encode())
        if not sent:
            log.warning("command %s not published now; it will be re-sent", command.id)
        return sent
