"""The embedded broker's quick topic matching gives the same answers as amqtt's own matcher."""

from __future__ import annotations

import logging

import pytest
from amqtt.broker import Broker

from carlink.gateway.embedded import _Broker

CASES = [
    ("carlink/v1/WP0ZZZY10PS100001/down/command", "carlink/v1/WP0ZZZY10PS100001/down/#"),
    ("carlink/v1/WP0ZZZY10PS100001/down", "carlink/v1/WP0ZZZY10PS100001/down/#"),
    ("carlink/v1/WP0ZZZY10PS100001/downstairs", "carlink/v1/WP0ZZZY10PS100001/down/#"),
    ("carlink/v1/WP0ZZZY10PS100002/down/command", "carlink/v1/WP0ZZZY10PS100001/down/#"),
    ("carlink/v1/WP0ZZZY10PS100001/up/ack", "carlink/v1/+/up/#"),
    ("carlink/v1/WP0ZZZY10PS100001/up/ack", "carlink/v1/WP0ZZZY10PS100001/up/ack"),
    ("carlink/v1/WP0ZZZY10PS100001/up/ack/x", "carlink/v1/WP0ZZZY10PS100001/up/ack"),
    ("carlink/internal/v1/events", "carlink/internal/v1/events"),
    ("$SYS/broker/uptime", "#"),
    ("$SYS/broker/uptime", "$SYS/#"),
    ("a/b", "#"),
    ("a", "a/#"),
    ("a/b/c", "a/+/c"),
]


def _bare(cls: type[Broker]) -> Broker:
    broker = cls.__new__(cls)
    broker.logger = logging.getLogger("test")
    return broker


@pytest.mark.parametrize(("topic", "topic_filter"), CASES)
def test_quick_matching_agrees_with_amqtt(topic: str, topic_filter: str) -> None:
    expected = Broker._matches(_bare(Broker), topic, topic_filter)
    quick = _bare(_Broker)
    assert quick._matches(topic, topic_filter) is expected
    assert quick._matches(topic, topic_filter) is expected  # from the remembered rule
