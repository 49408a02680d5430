"""Hypothesis strategies for everything a car's broker account can publish on its uplink topics.

Each uplink kind of docs/protocol.md gets messages of the right shape whose fields are, now and then,
hostile: wrong types, huge numbers, NaN and infinities, NUL and other control characters, lone surrogates,
over-long text, times from year 1 to 9999 with any offset or none, ids that exist (for this car, for another
car) or never did. Beside them: raw garbage bytes, JSON that is not an object, nesting deeper than any parser
recursion, oversized payloads. A batch sends a few of these in any order and repeats some, as QoS 1 does.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from carlink.protocol import topics as kinds
from carlink.protocol.messages import MAX_MESSAGE_BYTES, AckState, AlarmTrigger, Network

# Topics a car may publish on (its ACL allows up/#) that name no kind the gateway knows.
UNKNOWN_KINDS = ("reply", "command", "alarm-ack", "", "ACK", "telemetry/extra")
DELIVERY_STATES = (
    "downloading",
    "downloaded",
    "installing",
    "installed",
    "activated",
    "failed",
    "deactivated",
)
# Telemetry keys the fuzz fills (of messages.TELEMETRY_KEYS: flags, ranges, positions, nested objects).
FUZZED_TELEMETRY_KEYS = (
    "battery",
    "lock",
    "location",
    "privacy",
    "remote_access",
    "hotspot",
    "doors",
    "charging",
)


@dataclass(frozen=True)
class KnownIds:
    """Ids that exist in the fuzzed database, so messages reach real rows: this car's and other cars'."""

    own_commands: tuple[str, ...]
    other_commands: tuple[str, ...]
    own_deliveries: tuple[int, ...]
    other_deliveries: tuple[int, ...]
    own_codes: tuple[str, ...]
    other_codes: tuple[str, ...]
    emails: tuple[str, ...]
    passwords: tuple[str, ...]
    own_tokens: tuple[str, ...]
    other_tokens: tuple[str, ...]
    alarm_ids: tuple[str, ...]


@dataclass(frozen=True)
class Uplink:
    """One publish as the gateway receives it: the VIN from the topic, the kind, the payload."""

    vin: str
    kind: str
    payload: bytes

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep huge payloads readable
        shown = self.payload if len(self.payload) <= 300 else self.payload[:300] + b"..."
        return f"Uplink({self.vin!r}, {self.kind!r}, {shown!r} [{len(self.payload)} bytes])"


# --- hostile values -------------------------------------------------------------------------------------

CONTROL = "".join(chr(c) for c in (*range(0x20), 0x7F))
HOSTILE_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(CONTROL + "ab"), min_size=1, max_size=12),
    st.sampled_from(
        ["\x00", "ok\x00", "\ud800", "a\udfffb", "\u202e", "\ufeff", "' OR 1=1 --", "%s%n", "null"]
    ),
    st.sampled_from([33, 65, 201, 255, 257, 4097, 70_000]).map(lambda n: "x" * n),
    st.text(max_size=20),
)
# Any Unicode a valid message may carry: every plane, but no control character or lone surrogate.
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))
HUGE_NUMBERS = st.one_of(
    st.sampled_from([2**31, 2**31 - 1, 2**62 + 1, 2**63, 2**64, -(2**63) - 1, 10**100, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
)


_SCALARS = st.one_of(st.none(), st.booleans(), HUGE_NUMBERS, HOSTILE_TEXT)
_HOSTILE = st.one_of(
    _SCALARS, st.lists(_SCALARS, max_size=4), st.dictionaries(HOSTILE_TEXT, _SCALARS, max_size=3)
)


def hostile_values() -> st.SearchStrategy[Any]:
    """Values of the wrong type or out of any range (one strategy, built once: hypothesis caches by it)."""
    return _HOSTILE


def offsets() -> st.SearchStrategy[dt.tzinfo]:
    return st.integers(-(24 * 60) + 1, 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


def valid_times() -> st.SearchStrategy[str]:
    """Times that parse: mostly around now (a car with a good clock), else anywhen from year 1 to 9999 with
    any offset (a clock reset to zero, a battery swap, a forger), at the calendar's edges, or naive."""
    now = dt.datetime.now(dt.UTC)
    near = st.timedeltas(min_value=-dt.timedelta(days=2), max_value=dt.timedelta(minutes=2)).map(
        lambda d: (now + d).isoformat()
    )
    anywhen = st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59), timezones=offsets()
    ).map(dt.datetime.isoformat)
    edges = st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-05:00",
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            (now + dt.timedelta(days=1)).isoformat(),
            now.replace(tzinfo=None).isoformat(),  # naive
        ]
    )
    return st.one_of(near, near, near, anywhen, edges)


def hostile_times() -> st.SearchStrategy[Any]:
    """Things that are no time, or not quite one."""
    return st.one_of(
        st.sampled_from(
            ["2026-02-30T00:00:00Z", "2026-11-26T25:00:00Z", "yesterday", "", "10000-01-01T00:00:00Z"]
        ),
        st.integers(),
    )


@dataclass(frozen=True)
class Field:
    """A message field: what a correct car sends, and what a broken or hostile one may send instead."""

    valid: st.SearchStrategy[Any]
    hostile: st.SearchStrategy[Any]


def field(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any] | None = None) -> Field:
    return Field(valid, hostile_values() if hostile is None else st.one_of(hostile, hostile_values()))


def at_field() -> Field:
    return field(valid_times(), hostile_times())


def ids_of(known: tuple[Any, ...], fresh: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(known), fresh) if known else fresh


# --- well-formed shapes, per kind -----------------------------------------------------------------------

MODES = ("clean", "clean", "clean", "clean", "one", "one", "chaos")


def _object(fields: dict[str, Field], *, message: bool) -> st.SearchStrategy[dict[str, Any]]:
    """An object with these fields (and `v` for a message): clean, with one hostile field, or in chaos
    (any field hostile, one left out, an unknown one added, `v` wrong). Mostly clean, so that most
    messages pass validation and reach the database with their hostile-but-valid values."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        mode = draw(st.sampled_from(MODES))
        spoiled = {draw(st.sampled_from(sorted(fields)))} if mode == "one" and fields else set()
        built: dict[str, Any] = {}
        if message:
            built["v"] = draw(st.sampled_from([1, 0, 2, "1", None])) if mode == "chaos" else 1
        for name, spec in fields.items():
            hostile = name in spoiled or (mode == "chaos" and draw(st.booleans()))
            built[name] = draw(spec.hostile if hostile else spec.valid)
        if mode == "chaos" and fields and draw(st.booleans()):
            built.pop(draw(st.sampled_from(sorted(fields))), None)
        if mode == "chaos" and draw(st.booleans()):
            built[draw(HOSTILE_TEXT)] = draw(hostile_values())
        return built

    return build()


def _position() -> st.SearchStrategy[dict[str, Any]]:
    return _object(
        {
            "lat": field(st.floats(-90, 90), st.sampled_from([90.0001, -91, 1e308])),
            "lon": field(st.floats(-180, 180), st.sampled_from([180.5, -1e9])),
            "heading": field(st.one_of(st.none(), st.integers(0, 359)), st.sampled_from([360, -1])),
            "speed_kmh": field(st.one_of(st.none(), st.floats(0, 500)), st.sampled_from([500.1, -0.1])),
        },
        message=False,
    )


def _telemetry_value(key: str) -> st.SearchStrategy[dict[str, Any]]:
    huge = st.sampled_from([101, -1, 2**63, 1e308, "78"])
    fields: dict[str, dict[str, Field]] = {
        "battery": {"percent": field(st.integers(0, 100), huge)},
        "lock": {"locked": field(st.booleans())},
        "location": {
            "lat": field(st.floats(-90, 90), huge),
            "lon": field(st.floats(-180, 180), huge),
            "heading": field(st.integers(0, 359), huge),
        },
        "privacy": {"enabled": field(st.booleans())},
        "remote_access": {"authorised": field(st.booleans())},
        "hotspot": {"sharing": field(st.booleans()), "used_mb": field(st.integers(0, 10_000), huge)},
        "doors": {
            "open": field(st.fixed_dictionaries({"front_left": st.booleans(), "sunroof": st.booleans()}))
        },
        "charging": {
            "status": field(st.sampled_from(["CHARGING", "NOT_PLUGGED"])),
            "power_kw": field(st.floats(0, 350), huge),
        },
    }
    return _object(fields[key], message=False)


def _telemetry_values() -> Field:
    by_key = {key: _telemetry_value(key) for key in FUZZED_TELEMETRY_KEYS}
    valid = st.fixed_dictionaries({}, optional=by_key)
    odd = st.dictionaries(HOSTILE_TEXT, hostile_values(), min_size=1, max_size=3)
    return field(valid, st.tuples(valid, odd).map(lambda pair: {**pair[0], **pair[1]}))


def shaped_messages(known: KnownIds) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    """Per uplink kind, messages of its shape (docs/protocol.md) with now and then hostile fields. Every
    kind of `topics.UPLINK_KINDS` needs one (test_mqtt_uplinks checks), or the fuzz would skip it."""
    command_ids = ids_of(known.own_commands + known.other_commands, st.uuids().map(str))
    delivery_ids = ids_of(known.own_deliveries + known.other_deliveries, st.integers(1, 2**31 - 1))
    codes = ids_of(known.own_codes + known.other_codes, st.from_regex(r"\A[0-9]{8}\Z"))
    tokens = ids_of(
        known.own_tokens + known.other_tokens, st.text("abcdefXYZ0123-_", min_size=16, max_size=43)
    )
    alarm_ids = ids_of(known.alarm_ids, st.from_regex(r"\A[A-Za-z0-9_-]{8,20}\Z"))
    reasons = st.one_of(st.none(), st.sampled_from(["EXPIRED", "NOT_POSSIBLE: door open", "hash_mismatch"]))
    texts = st.text(PRINTABLE, min_size=1, max_size=80)
    return {
        kinds.UP_ACK: _object(
            {
                "command_id": field(command_ids),
                "state": field(st.sampled_from([s.value for s in AckState])),
                "reason": field(st.one_of(reasons, texts)),
                "at": at_field(),
            },
            message=True,
        ),
        kinds.UP_TELEMETRY: _object({"at": at_field(), "values": _telemetry_values()}, message=True),
        kinds.UP_CONNECTION: _object(
            {
                "online": field(st.booleans()),
                "network": field(st.sampled_from([n.value for n in Network])),
                "at": field(st.one_of(st.none(), valid_times()), hostile_times()),
            },
            message=True,
        ),
        kinds.UP_REQUEST: _object(
            {"id": field(st.uuids().map(str)), "kind": field(st.just("pair")), "code": field(codes)},
            message=True,
        ),
        kinds.UP_ENTITLEMENTS: _object(
            {
                "revision": field(st.integers(0, 12), st.sampled_from([2**63, 2**31])),
                "services": field(st.lists(st.sampled_from(["navigation-plus", "wifi-5gb"]), max_size=3)),
                "at": at_field(),
            },
            message=True,
        ),
        kinds.UP_ID_LOGIN: st.one_of(
            [_id_login(action, known, tokens) for action in ("login", "resume", "save", "timer", "logout")]
        ),
        kinds.UP_DELIVERIES: _object(
            {
                "delivery": field(delivery_ids),
                "state": field(st.sampled_from(DELIVERY_STATES)),
                "reason": field(st.one_of(reasons, texts)),
                "have": field(st.one_of(st.none(), st.integers(0, 2**62))),
                "length": field(st.one_of(st.none(), st.integers(0, 2**62))),
                "version": field(
                    st.one_of(st.none(), st.just("4.2.0"), st.text(PRINTABLE, min_size=1, max_size=32))
                ),
                "at": at_field(),
            },
            message=True,
        ),
        kinds.UP_ALARM: _object(
            {
                "id": field(alarm_ids),
                "trigger": field(st.sampled_from([t.value for t in AlarmTrigger])),
                "silent": field(st.booleans()),
                "at": at_field(),
                "location": field(st.one_of(st.none(), _position())),
            },
            message=True,
        ),
        kinds.UP_TRACK: _object({"at": at_field(), "location": field(_position())}, message=True),
        kinds.UP_SECURITY: _object(
            {
                "revision": field(st.integers(0, 12)),
                "package": field(st.sampled_from([None, "tracking", "tracking-plus"])),
                "activation": field(st.one_of(st.none(), st.integers(1, 6))),
                "at": at_field(),
            },
            message=True,
        ),
    }


def _id_login(
    action: str, known: KnownIds, tokens: st.SearchStrategy[str]
) -> st.SearchStrategy[dict[str, Any]]:
    fields = {"id": field(st.uuids().map(str)), "action": field(st.just(action))}
    if action == "login":
        fields |= {
            "email": field(st.sampled_from(known.emails)),
            "password": field(st.sampled_from(known.passwords)),
            "security_code": field(st.one_of(st.none(), st.from_regex(r"\A[0-9]{4}\Z"))),
        }
    else:
        fields["token"] = field(tokens)
    if action == "save":
        names = st.lists(st.text(PRINTABLE, min_size=1, max_size=80), max_size=3)
        fields |= {
            "profile": field(
                _object(
                    {
                        "seat_position": field(st.one_of(st.none(), st.integers(0, 100))),
                        "climate_temperature_c": field(st.one_of(st.none(), st.floats(15, 30))),
                        "climate_mode": field(st.sampled_from([None, "auto", "eco", "comfort", "max"])),
                    },
                    message=False,
                )
            ),
            "services": field(
                _object({"favourites": field(names), "radio_stations": field(names)}, message=False)
            ),
        }
    fields["at"] = field(st.one_of(st.none(), valid_times()), hostile_times())
    return _object(fields, message=True)


# --- bytes on the wire ----------------------------------------------------------------------------------


def encoded(message: Any, ascii_only: bool) -> bytes:
    """JSON as a careless or hostile car writes it: NaN and Infinity allowed, lone surrogates passed on."""
    return json.dumps(message, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def garbage() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"null",
                b"[]",
                b"42",
                b'"text"',
                b"\xef\xbb\xbf{}",
                b'{"v": 1',
                b'{"v": 1, "v": 2}',
                b"\xff\xfe{\x00}",
                b'{"v": NaN}',
                b"1e999",
                b"[" * 60_000,
                b'{"a":' * 13_000,
                b" " * (MAX_MESSAGE_BYTES + 1),
            ]
        ),
        hostile_values().map(lambda value: encoded(value, True)),
    )


def payloads(known: KnownIds) -> dict[str, st.SearchStrategy[bytes]]:
    """Per uplink kind (and for kinds the gateway does not know): four messages in five, else garbage."""
    junk = garbage()

    def mostly(shaped: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            if draw(st.sampled_from((True, True, True, True, False))):
                return encoded(draw(shaped), draw(st.booleans()))
            return draw(junk)

        return build()

    by_kind = {kind: mostly(shaped) for kind, shaped in shaped_messages(known).items()}
    return by_kind | {kind: junk for kind in UNKNOWN_KINDS}


def uplinks(vin: str, known: KnownIds) -> st.SearchStrategy[Uplink]:
    by_kind = payloads(known)

    def on(kind: str) -> st.SearchStrategy[Uplink]:
        return by_kind[kind].map(lambda payload: Uplink(vin, kind, payload))

    return st.one_of([on(kind) for kind in (*kinds.UPLINK_KINDS * 3, *UNKNOWN_KINDS)])


def batches(
    vins: st.SearchStrategy[str], known: KnownIds, max_size: int = 4
) -> st.SearchStrategy[list[Uplink]]:
    """A few uplinks on one car's topics, in any order, some of them again (QoS 1 is at least once, and
    re-sends reorder)."""
    by_kind = payloads(known)
    kinds_ = st.sampled_from([*kinds.UPLINK_KINDS * 3, *UNKNOWN_KINDS])

    @st.composite
    def build(draw: st.DrawFn) -> list[Uplink]:
        vin = draw(vins)
        sent = []
        for _ in range(draw(st.integers(1, max_size))):
            kind = draw(kinds_)
            sent.append(Uplink(vin, kind, draw(by_kind[kind])))
        again = draw(st.lists(st.integers(0, len(sent) - 1), max_size=2))
        return [*sent, *(sent[i] for i in again)]

    return build()
