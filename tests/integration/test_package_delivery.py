"""Signed data packages reach a simulated car over real HTTP (docs/protocol.md, 'Signed data packages'):
the car resumes an interrupted download with a range request, verifies metadata and file before it
installs, and refuses (and reports) a tampered file, replayed metadata and wrong credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from carlink.clock import clock
from carlink.db.base import Database
from carlink.demo import world
from carlink.errors import CarlinkError
from carlink.fod import service
from carlink.gateway.credentials import GATEWAY_USER, car_password, gateway_password
from carlink.protocol.packages import update_root_chain, verify_self_signed_root, verify_targets
from carlink.settings import Settings
from carlink.sim.packages import PackageClient
from tests.support.stack import NINE_ELEVEN, SECRET, TAYCAN, Stack, eventually

PACKAGE = bytes(range(256)) * 1024  # 256 KiB: several chunks on the wire
END = len(PACKAGE) - 1
FILES = "/api/v1/packages/files"
METADATA = "/api/v1/packages/metadata"
TAYCAN_AUTH = (TAYCAN, car_password(SECRET, TAYCAN))
# Targets v1 is empty, v2 names the function packages (signed at the first start): a test's first file is v3.
FIRST = 3


async def add(stack: Stack, tmp_path: Path, name: str, data: bytes, **custom: Any) -> service.AddedPackage:
    settings = stack.settings.model_copy(update={"package_dir": str(tmp_path / "packages")})
    async with stack.db.transaction() as session:
        return await service.add_package(session, settings, name, data, custom)


async def rotate(stack: Stack, role: str) -> None:
    async with stack.db.transaction() as session:
        await service.rotate_key(session, role)


class DroppedConnection(httpx.AsyncByteStream):
    """A response body whose connection is lost after `after` bytes (the car drove into a tunnel)."""

    def __init__(self, inner: httpx.AsyncByteStream, after: int) -> None:
        self.inner, self.after = inner, after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.inner:
            if sent + len(chunk) >= self.after:
                yield chunk[: self.after - sent]
                raise httpx.ReadError("connection lost")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recording(httpx.AsyncBaseTransport):
    """The real network, plus a log of what the car asked and got, optional replayed answers, and a
    connection lost during the first file download after `drop_after` bytes."""

    def __init__(
        self,
        replay: dict[str, bytes] | None = None,
        drop_after: int | None = None,
        during_first_download: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.replay = replay or {}
        self.drop_after = drop_after
        self.during_first_download = during_first_download
        self.log: list[tuple[str, str | None, int, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = self.replay.get(request.url.path)
        if body is not None:
            response = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
        else:
            response = await self.inner.handle_async_request(request)
            if self.during_first_download is not None and request.url.path.startswith(FILES):
                await self.during_first_download()  # the headers are here, the body is still to come
                self.during_first_download = None
            if self.drop_after is not None and request.url.path.startswith(FILES):
                assert isinstance(response.stream, httpx.AsyncByteStream)
                stream = DroppedConnection(response.stream, self.drop_after)
                response = httpx.Response(response.status_code, headers=response.headers, stream=stream)
                self.drop_after = None
        self.log.append(
            (
                request.url.path,
                request.headers.get("Range"),
                response.status_code,
                response.headers.get("Content-Range"),
            )
        )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def damage(path: Path, *, flip: int | None = None, keep: int | None = None) -> None:
    """Changes a stored package file behind the cloud's back: one byte flipped, or cut short."""
    data = bytearray(path.read_bytes())
    if flip is not None:
        data[flip] ^= 0xFF
    path.write_bytes(bytes(data[:keep]))


def car(stack: Stack, tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None) -> PackageClient:
    http = httpx.AsyncClient(base_url=stack.base_url, transport=transport, timeout=30)
    client = PackageClient(stack.base_url, TAYCAN, TAYCAN_AUTH[1], tmp_path / "car", http=http)
    return client


async def test_car_resumes_an_interrupted_download_and_installs_the_verified_package(
    stack: Stack, tmp_path: Path
) -> None:
    added = await add(stack, tmp_path, "adaptive-cruise.bin", PACKAGE, function="adaptive_cruise")
    assert added.changed and added.targets_version == FIRST
    transport = Recording(drop_after=100_000)
    client = car(stack, tmp_path, transport)
    try:
        first = await client.fetch_and_install("adaptive-cruise.bin", clock.now())
        assert first.state == "interrupted", first
        assert [part.stat().st_size for part in client.partials("adaptive-cruise.bin")] == [100_000]
        # Offline again after 50,000 more bytes (the simulator stops reading and hangs up).
        again = await client.fetch_and_install("adaptive-cruise.bin", clock.now(), max_bytes=50_000)
        assert again.state == "interrupted", again
        assert again.message == f"150000 of {len(PACKAGE)} bytes"

        second = await client.fetch_and_install("adaptive-cruise.bin", clock.now())
        assert second.ok, second
        assert second.targets_version == FIRST
        assert client.installed_path("adaptive-cruise.bin").read_bytes() == PACKAGE
        assert not client.partials("adaptive-cruise.bin")
        downloads = [entry for entry in transport.log if entry[0].startswith(FILES)]
        assert downloads == [
            (f"{FILES}/adaptive-cruise.bin", None, 200, None),
            (f"{FILES}/adaptive-cruise.bin", "bytes=100000-", 206, f"bytes 100000-{END}/{len(PACKAGE)}"),
            (f"{FILES}/adaptive-cruise.bin", "bytes=150000-", 206, f"bytes 150000-{END}/{len(PACKAGE)}"),
        ]
        assert client.root is not None and client.root.version == 1
        assert client.targets_version == FIRST
    finally:
        await client.aclose()
    again = await add(stack, tmp_path, "adaptive-cruise.bin", PACKAGE, function="adaptive_cruise")
    assert not again.changed and again.targets_version == FIRST  # the same content again: no new version


async def test_a_file_tampered_on_the_server_is_refused_with_hash_mismatch(
    stack: Stack, tmp_path: Path
) -> None:
    added = await add(stack, tmp_path, "matrix-lights.bin", PACKAGE)
    stored = Path(added.file.stored_path)
    damage(stored, flip=1234)
    client = car(stack, tmp_path)
    try:
        outcome = await client.fetch_and_install("matrix-lights.bin", clock.now())
        assert (outcome.state, outcome.code) == ("refused", "hash_mismatch")
        assert outcome.report()["code"] == "hash_mismatch"
        assert not client.installed_path("matrix-lights.bin").exists()
        assert not client.partials("matrix-lights.bin")  # the next try starts afresh
        damage(stored, keep=1000)  # truncated on the server
        outcome = await client.fetch_and_install("matrix-lights.bin", clock.now())
        assert (outcome.state, outcome.code) == ("refused", "length_mismatch")
        unknown = await client.fetch_and_install("no-such.bin", clock.now())
        assert (unknown.state, unknown.code) == ("refused", "unknown_target")
    finally:
        await client.aclose()

    # Cut short on the server while a car is half-way: its resume point lies past the end (416), so it
    # starts again from byte 0, gets a file that ends too soon, and refuses it.
    added = await add(stack, tmp_path, "navigation.bin", PACKAGE)
    transport = Recording()
    client = car(stack, tmp_path / "second", transport)
    try:
        first = await client.fetch_and_install("navigation.bin", clock.now(), max_bytes=50_000)
        assert first.state == "interrupted"
        damage(Path(added.file.stored_path), keep=1000)
        outcome = await client.fetch_and_install("navigation.bin", clock.now())
        assert (outcome.state, outcome.code) == ("refused", "length_mismatch")
        statuses = [(entry[1], entry[2]) for entry in transport.log if entry[0].startswith(FILES)]
        assert statuses == [(None, 200), ("bytes=50000-", 416), (None, 200)]
        assert not client.partials("navigation.bin")
    finally:
        await client.aclose()


async def test_replayed_old_targets_are_refused_as_rollback(stack: Stack, tmp_path: Path) -> None:
    await add(stack, tmp_path, "lane-assist.bin", b"v1 of lane assist")
    old = (await stack.http.get(f"{METADATA}/targets.json", auth=TAYCAN_AUTH)).content
    await add(stack, tmp_path, "lane-assist.bin", b"v2 of lane assist")
    client = car(stack, tmp_path)
    try:
        assert (await client.refresh(clock.now())).version == FIRST + 1
    finally:
        await client.aclose()
    # Someone between car and cloud answers with the older, validly signed targets.
    replaying = car(stack, tmp_path, Recording(replay={f"{METADATA}/targets.json": old}))
    try:
        outcome = await replaying.fetch_and_install("lane-assist.bin", clock.now())
        assert (outcome.state, outcome.code) == ("refused", "rollback")
        assert replaying.targets_version == FIRST + 1
    finally:
        await replaying.aclose()


async def test_a_key_rotation_mid_download_still_verifies_after_the_car_refreshes(
    stack: Stack, tmp_path: Path
) -> None:
    await add(stack, tmp_path, "power-boost.bin", PACKAGE)
    client = car(stack, tmp_path)
    try:
        first = await client.fetch_and_install("power-boost.bin", clock.now(), max_bytes=50_000)
        assert first.state == "interrupted" and first.targets_version == FIRST
        await rotate(stack, "targets")  # root v2 lists the new targets key; targets v3 signed by it
        await rotate(stack, "root")  # root v3 signed by the old and the new root key
        outcome = await client.fetch_and_install("power-boost.bin", clock.now())
        assert outcome.ok, outcome
        assert outcome.targets_version == FIRST + 1
        assert client.root is not None and client.root.version == 3
        assert client.installed_path("power-boost.bin").read_bytes() == PACKAGE
    finally:
        await client.aclose()


async def test_a_package_replaced_during_the_download_is_fetched_anew_and_installed(
    stack: Stack, tmp_path: Path
) -> None:
    await add(stack, tmp_path, "maps-eu.bin", PACKAGE)
    newer = bytes(reversed(PACKAGE))
    client = car(stack, tmp_path)
    try:
        first = await client.fetch_and_install("maps-eu.bin", clock.now(), max_bytes=60_000)
        assert first.state == "interrupted"
        await add(stack, tmp_path, "maps-eu.bin", newer[:200_000])  # targets v3: other content
        outcome = await client.fetch_and_install("maps-eu.bin", clock.now())
        assert outcome.ok and outcome.targets_version == FIRST + 1, outcome
        assert client.installed_path("maps-eu.bin").read_bytes() == newer[:200_000]
    finally:
        await client.aclose()

    async def replace() -> None:
        await add(stack, tmp_path, "maps-eu.bin", newer)  # targets v4, while v3's bytes are on the way

    client = car(stack, tmp_path / "second", Recording(during_first_download=replace))
    try:
        outcome = await client.fetch_and_install("maps-eu.bin", clock.now())
        assert outcome.ok and outcome.targets_version == FIRST + 2, outcome
        assert client.installed_path("maps-eu.bin").read_bytes() == newer
        assert not client.partials("maps-eu.bin")
    finally:
        await client.aclose()


async def test_only_cars_with_their_broker_password_and_operators_get_packages(
    stack: Stack, tmp_path: Path
) -> None:
    await add(stack, tmp_path, "acc.bin", b"hello")
    url = f"{FILES}/acc.bin"
    for auth in [
        None,
        (TAYCAN, "wrong-password"),
        (TAYCAN, car_password(SECRET, NINE_ELEVEN)),
        (GATEWAY_USER, gateway_password(SECRET)),
    ]:
        response = await stack.http.get(url, auth=auth)
        assert response.status_code == 401, (auth, response.text)
        assert response.json()["error"]["code"] == "unauthorised"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    response = await stack.http.get(url, headers={"Authorization": "Basic !!!"})
    assert response.status_code == 401
    assert (await stack.http.get(url, auth=TAYCAN_AUTH)).content == b"hello"
    wrong = PackageClient(stack.base_url, TAYCAN, "wrong-password", tmp_path / "car")
    try:
        outcome = await wrong.fetch_and_install("acc.bin", clock.now())
        assert outcome.state == "unavailable" and "401" in outcome.message
    finally:
        await wrong.aclose()
    async with await stack.as_user(world.OPERATOR) as operator:
        assert (await operator.get(url)).content == b"hello"
    async with await stack.as_user(world.OWNER) as owner:
        response = await owner.get(url)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "staff_only"


async def test_range_requests_answer_206_and_416_and_metadata_is_served_by_version(
    stack: Stack, tmp_path: Path
) -> None:
    added = await add(stack, tmp_path, "maps-eu.bin", PACKAGE)
    size, etag = len(PACKAGE), f'"{added.file.sha256}"'
    http, url = stack.http, f"{FILES}/maps-eu.bin"

    whole = await http.get(url, auth=TAYCAN_AUTH)
    assert whole.status_code == 200 and whole.content == PACKAGE
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["ETag"] == etag

    first = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": "bytes=0-9"})
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-9/{size}"
    assert first.content == PACKAGE[:10]

    tail = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": f"bytes={size - 5}-"})
    assert tail.status_code == 206 and tail.content == PACKAGE[-5:]
    suffix = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": "bytes=-7"})
    assert suffix.status_code == 206 and suffix.content == PACKAGE[-7:]

    past = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{size}"

    # If-Range with another file's tag: the file changed, so the whole new file comes with 200.
    stale = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": "bytes=10-", "If-Range": '"0000"'})
    assert stale.status_code == 200 and stale.content == PACKAGE
    fresh = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": "bytes=10-", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == PACKAGE[10:]

    head = await http.head(url, auth=TAYCAN_AUTH)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(size)

    backwards = await http.get(url, auth=TAYCAN_AUTH, headers={"Range": "bytes=9-2"})
    assert backwards.status_code == 400

    missing = await http.get(f"{FILES}/no-such.bin", auth=TAYCAN_AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "package_not_found"

    root = await http.get(f"{METADATA}/root.json", auth=TAYCAN_AUTH)
    assert root.status_code == 200 and root.json()["signed"]["version"] == 1
    assert (await http.get(f"{METADATA}/1.root.json", auth=TAYCAN_AUTH)).json() == root.json()
    unknown = await http.get(f"{METADATA}/7.root.json", auth=TAYCAN_AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "package_metadata_not_found"
    targets = await http.get(f"{METADATA}/targets.json", auth=TAYCAN_AUTH)
    assert targets.json()["signed"]["targets"]["maps-eu.bin"]["length"] == size


async def test_jobs_re_sign_targets_before_they_expire(stack: Stack, tmp_path: Path) -> None:
    await add(stack, tmp_path, "acc.bin", b"hello")
    clock.advance(days=28)  # targets live 30 days; the jobs role renews them 72 hours ahead

    async def renewed() -> bool:
        async with stack.db.session() as session:
            return (await service.current_targets(session)).version == FIRST + 1

    await eventually(renewed, timeout=15)
    client = car(stack, tmp_path)
    try:
        outcome = await client.fetch_and_install("acc.bin", clock.now() + dt.timedelta(days=5))
        assert outcome.ok, outcome
        assert outcome.targets_version == FIRST + 1
    finally:
        await client.aclose()


async def test_the_cloud_makes_its_first_keys_once_and_renews_expiring_metadata(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await service.ensure_keys(session)
            await service.ensure_keys(session)  # a second start changes nothing
            assert [key.role for key in await service.all_keys(session)] == ["root", "targets"]
            root_v1 = (await service.current_root(session)).envelope
            assert (await service.current_targets(session)).envelope["signed"]["targets"] == {}
        pinned = verify_self_signed_root(root_v1)

        late = clock.now() + dt.timedelta(days=364)  # root lives 365 days, targets 30: both due
        async with db.transaction() as session:
            assert await service.refresh_expiring(session, late) == ["root v2", "targets v2"]
            assert await service.refresh_expiring(session, late) == []
            root_v2 = (await service.root_version(session, 2)).envelope
            targets_v2 = (await service.current_targets(session)).envelope
        root = update_root_chain(pinned, [root_v2], late)  # v1 has expired by then; v2 has not
        assert verify_targets(root, targets_v2, late, last_seen_version=1).version == 2

        async with db.transaction() as session:
            with pytest.raises(CarlinkError) as refused:
                await service.rotate_key(session, "timestamp")
            assert refused.value.code == "invalid_key_role"
            with pytest.raises(CarlinkError) as refused:
                await service.add_package(session, Settings(), "../escape.bin", b"x")
            assert refused.value.code == "invalid_package_name"
    finally:
        await db.dispose()
