"""The car's side of signed data packages (docs/protocol.md 'Signed data packages').

The car trusts the root it was provisioned with (fetched once at first start, like a factory pins it),
walks the root chain one version at a time, accepts targets only if they verify and are not older than
the newest it has seen, downloads into a partial file that resumes with `Range` after an interruption,
and installs a file only after its length and SHA-256 match the targets. Every refusal comes back as a
`PackageOutcome` with the stable code, for the car to report.

State on disk, under `state_dir`: `root.json` and `targets.json` (the newest verified envelopes),
`partial/<name>.<sha256>.part` (one content each) and `installed/<name>`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from carlink.protocol.packages import (
    HASH_MISMATCH,
    LENGTH_MISMATCH,
    MALFORMED,
    PACKAGE_NAME,
    PackageRefused,
    Root,
    TargetFile,
    Targets,
    check_fresh,
    parse_root,
    parse_targets,
    verify_file,
    verify_root_update,
    verify_self_signed_root,
    verify_targets,
)

METADATA = "/api/v1/packages/metadata"
FILES = "/api/v1/packages/files"
# A chain longer than this in one refresh is more likely an endless server than real rotations.
MAX_ROOT_STEPS = 1024
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

State = Literal["installed", "refused", "interrupted", "unavailable"]


@dataclass(frozen=True)
class PackageOutcome:
    """What the car reports: installed, refused (with a refusal code), interrupted (will resume) or
    unavailable (the cloud could not be asked)."""

    name: str
    state: State
    code: str | None = None
    message: str = ""
    targets_version: int | None = None

    @property
    def ok(self) -> bool:
        return self.state == "installed"

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "code": self.code,
            "message": self.message,
            "targets_version": self.targets_version,
        }


@dataclass(frozen=True)
class DownloadProgress:
    have: int
    length: int
    restarted: bool = False

    @property
    def complete(self) -> bool:
        return self.have == self.length


class PackageUnavailable(Exception):
    """The cloud answered with something other than the document or file (an HTTP error)."""


class PackageClient:
    def __init__(
        self,
        base_url: str,
        vin: str,
        password: str,
        state_dir: Path,
        *,
        trusted_root: dict[str, Any] | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.state_dir = state_dir
        self.partial_dir = state_dir / "partial"
        self.installed_dir = state_dir / "installed"
        for folder in (self.state_dir, self.partial_dir, self.installed_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.auth = httpx.BasicAuth(vin, password)
        if trusted_root is not None and not self._root_path.exists():
            verify_self_signed_root(trusted_root)
            self._save(self._root_path, trusted_root)

    async def __aenter__(self) -> PackageClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    # --- trusted state ----------------------------------------------------------------------------------

    @property
    def _root_path(self) -> Path:
        return self.state_dir / "root.json"

    @property
    def _targets_path(self) -> Path:
        return self.state_dir / "targets.json"

    @staticmethod
    def _save(path: Path, envelope: dict[str, Any]) -> None:
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(envelope))
        temp.replace(path)

    @property
    def root(self) -> Root | None:
        if not self._root_path.exists():
            return None
        return parse_root(json.loads(self._root_path.read_text()))

    @property
    def targets_version(self) -> int:
        """The highest targets version this car has accepted (rollback protection); 0 for none."""
        if not self._targets_path.exists():
            return 0
        return parse_targets(json.loads(self._targets_path.read_text())).version

    def partial_path(self, name: str, sha256: str) -> Path:
        """A partial file belongs to one content: a package replaced on the cloud starts afresh."""
        return self.partial_dir / f"{name}.{sha256}.part"

    def partials(self, name: str) -> list[Path]:
        return sorted(self.partial_dir.glob(f"{glob.escape(name)}.*.part"))

    def installed_path(self, name: str) -> Path:
        return self.installed_dir / name

    # --- metadata -----------------------------------------------------------------------------------------

    async def _get_json(self, path: str) -> Any | None:
        """The JSON document at `path`; None for 404 (the end of the root chain)."""
        response = await self.http.get(path, auth=self.auth)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PackageUnavailable(f"GET {path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise PackageRefused(MALFORMED, f"GET {path} is not JSON") from exc

    async def _trusted_root(self) -> Root:
        root = self.root
        if root is not None:
            return root
        # First start without a provisioned root: pin the cloud's root v1, as the factory would.
        raw = await self._get_json(f"{METADATA}/1.root.json")
        if raw is None:
            raise PackageUnavailable("the cloud has no root metadata")
        root = verify_self_signed_root(raw)
        self._save(self._root_path, raw)
        return root

    async def refresh(self, now: dt.datetime) -> Targets:
        """Updates the root chain step by step, then accepts the newest targets if they verify."""
        root = await self._trusted_root()
        for _ in range(MAX_ROOT_STEPS):
            raw = await self._get_json(f"{METADATA}/{root.version + 1}.root.json")
            if raw is None:
                break
            root = verify_root_update(root, raw, now, check_expiry=False)
            self._save(self._root_path, raw)  # each verified step is trusted from now on
        check_fresh(root, now)
        raw_targets = await self._get_json(f"{METADATA}/targets.json")
        if raw_targets is None:
            raise PackageUnavailable("the cloud has no targets metadata")
        return self.accept_targets(raw_targets, now)

    def accept_targets(self, envelope: Any, now: dt.datetime) -> Targets:
        """Verifies targets against the trusted root and the newest version seen; keeps them if newer."""
        root = self.root
        if root is None:
            raise PackageRefused(MALFORMED, "no trusted root yet")
        targets = verify_targets(root, envelope, now, self.targets_version)
        self._save(self._targets_path, envelope)
        return targets

    # --- files --------------------------------------------------------------------------------------------

    async def download(
        self, name: str, target: TargetFile, *, max_bytes: int | None = None, retry: bool = True
    ) -> DownloadProgress:
        """Fetches the rest of the file into its partial file; `max_bytes` stops early (a car that goes
        offline mid-download). A 206 must continue exactly where the partial file ends; a 200 means the
        server sent the whole file, so the car starts again from byte 0."""
        partial = self.partial_path(name, target.sha256)
        for other in self.partials(name):
            if other != partial:
                other.unlink()  # an earlier content of this package; it will not be finished
        have = partial.stat().st_size if partial.exists() else 0
        if have > target.length:
            partial.unlink()
            have = 0
        if have == target.length:
            return DownloadProgress(have, target.length)
        headers = {"If-Range": f'"{target.sha256}"'}
        if have:
            headers["Range"] = f"bytes={have}-"
        misfit = False
        try:
            async with self.http.stream(
                "GET", f"{FILES}/{name}", auth=self.auth, headers=headers
            ) as response:
                if response.status_code == 206 and _range_start(response, target.length) == have:
                    have = await _receive(response, partial, "ab", have, target.length, max_bytes)
                elif response.status_code == 200:
                    restarted = bool(have)
                    have = await _receive(response, partial, "wb", 0, target.length, max_bytes)
                    return DownloadProgress(have, target.length, restarted)
                elif response.status_code in (206, 416):
                    misfit = True  # our partial file no longer fits the file on the server
                else:
                    raise PackageUnavailable(f"GET {FILES}/{name}: HTTP {response.status_code}")
        except httpx.TransportError:
            pass  # offline mid-download: what arrived is on disk; the next try resumes
        else:
            if misfit:
                partial.unlink(missing_ok=True)
                if retry:
                    return await self.download(name, target, max_bytes=max_bytes, retry=False)
                return DownloadProgress(0, target.length, restarted=True)
        if partial.exists():
            have = partial.stat().st_size
        return DownloadProgress(have, target.length)

    async def fetch_and_install(
        self, name: str, now: dt.datetime, *, max_bytes: int | None = None
    ) -> PackageOutcome:
        """Refresh metadata, download (resuming), refresh again, verify, install. Never raises a refusal:
        it returns it, with its code, for the car to report."""
        version: int | None = None
        try:
            self._check_name(name)
            target: TargetFile | None = None
            # Keys may be rotated or the file replaced while the car downloads: after a complete download
            # it refreshes once more and verifies against the newest targets (fetching new content anew).
            for _ in range(3):
                targets = await self.refresh(now)
                version = targets.version
                newest = targets.target(name)
                if target is not None and newest.hashes == target.hashes and newest.length == target.length:
                    break
                target = newest
                progress = await self.download(name, target, max_bytes=max_bytes)
                if not progress.complete:
                    return PackageOutcome(
                        name,
                        "interrupted",
                        message=f"{progress.have} of {progress.length} bytes",
                        targets_version=version,
                    )
            else:
                return PackageOutcome(name, "interrupted", None, "the package kept changing", version)
            partial = self.partial_path(name, target.sha256)
            await asyncio.to_thread(verify_file, target, partial)
        except PackageRefused as refusal:
            if refusal.code in (HASH_MISMATCH, LENGTH_MISMATCH):
                for bad in self.partials(name):
                    bad.unlink()  # bad bytes: the next try starts afresh
            return PackageOutcome(name, "refused", refusal.code, refusal.message, version)
        except (PackageUnavailable, httpx.HTTPError) as error:
            return PackageOutcome(name, "unavailable", message=str(error), targets_version=version)
        partial.replace(self.installed_path(name))
        return PackageOutcome(name, "installed", targets_version=version)

    @staticmethod
    def _check_name(name: str) -> None:
        # The name becomes a file name in the car: the protocol's rule keeps it inside its folder.
        if not PACKAGE_NAME.fullmatch(name):
            raise PackageRefused(MALFORMED, f"{name!r} is not a package name")


def _range_start(response: httpx.Response, length: int) -> int | None:
    """The first byte of a 206 answer, if its Content-Range fits the file the targets name."""
    found = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if found is None or int(found.group(3)) != length:
        return None
    return int(found.group(1))


async def _receive(
    response: httpx.Response, partial: Path, mode: str, have: int, length: int, max_bytes: int | None
) -> int:
    """Writes the body to the partial file as it arrives (nothing buffered is lost when the connection
    drops) and returns how many bytes the partial file holds. Never more than `length`."""
    sent = 0
    with partial.open(mode) as file:
        async for chunk in response.aiter_bytes():
            if max_bytes is not None and sent + len(chunk) > max_bytes:
                chunk = chunk[: max_bytes - sent]
            if have + len(chunk) > length:
                raise PackageRefused(LENGTH_MISMATCH, f"the server sent more than the {length} bytes named")
            file.write(chunk)
            file.flush()
            have += len(chunk)
            sent += len(chunk)
            if max_bytes is not None and sent >= max_bytes:
                return have  # the car hangs up here; the partial file stays
    if have < length:
        # The server ended its answer cleanly, short of the length the targets name.
        raise PackageRefused(LENGTH_MISMATCH, f"the server's file ends at {have} of {length} bytes")
    return have
