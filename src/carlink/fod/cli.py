"""`carlink packages`: operators add signed data packages, list them and rotate the signing keys
(docs/packages.md)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from carlink.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

packages_app = typer.Typer(
    help="Signed data packages: files for the cars, their metadata and signing keys (issue 6).",
    no_args_is_help=True,
)
console = Console()


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One unit of work against the configured database, migrated and with the package keys made."""
    from carlink.db.migrate import run_migrated
    from carlink.fod.service import ensure_keys

    return run_migrated(get_settings().database_url, work, ensure_keys)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


@packages_app.command("add")
def packages_add(
    file: Annotated[Path, typer.Argument(help="the file to publish")],
    name: Annotated[str | None, typer.Option(help="the package name; default: the file's name")] = None,
    custom: Annotated[
        str, typer.Option(help='JSON object signed with the entry, e.g. \'{"function": "acc"}\'')
    ] = "{}",
    content_type: Annotated[str, typer.Option(help="Content-Type the file is served with")] = (
        "application/octet-stream"
    ),
) -> None:
    """Store a file and sign a new targets version naming it; the same content again changes nothing."""
    from carlink.errors import CarlinkError
    from carlink.fod import service

    try:
        extra = json.loads(custom)
    except json.JSONDecodeError as exc:
        raise _fail(f"--custom is not JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise _fail("--custom must be a JSON object")
    settings = get_settings()

    async def work(session: AsyncSession) -> service.AddedPackage:
        return await service.add_package(
            session, settings, name or file.name, file, extra, content_type=content_type
        )

    try:
        added = _in_transaction(work)
    except CarlinkError as exc:
        raise _fail(exc.message) from exc
    row = added.file
    what = "added" if added.changed else "unchanged"
    console.print(
        f"{row.name}: {what}, {row.length} bytes, sha256 {row.sha256}; "
        f"targets version {added.targets_version}"
    )


@packages_app.command("list")
def packages_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Every package with its length and SHA-256, the current metadata versions and the keys."""
    from rich.table import Table

    from carlink.fod import service

    async def work(session: AsyncSession) -> dict[str, Any]:
        root = await service.current_root(session)
        targets = await service.current_targets(session)
        return {
            "root_version": root.version,
            "root_expires": root.expires_at.isoformat(),
            "targets_version": targets.version,
            "targets_expires": targets.expires_at.isoformat(),
            "packages": [
                {
                    "name": row.name,
                    "length": row.length,
                    "sha256": row.sha256,
                    "content_type": row.content_type,
                    "custom": row.custom,
                    "stored_path": row.stored_path,
                }
                for row in await service.list_packages(session)
            ],
            "keys": [
                {
                    "keyid": key.keyid,
                    "role": key.role,
                    "created_at": key.created_at.isoformat(),
                    "retired_at": key.retired_at.isoformat() if key.retired_at else None,
                }
                for key in await service.all_keys(session)
            ],
        }

    found = _in_transaction(work)
    if as_json:
        print(json.dumps(found))
        return
    table = Table(title=f"Packages (targets v{found['targets_version']}, root v{found['root_version']})")
    for column in ("name", "bytes", "sha256"):
        table.add_column(column)
    for package in found["packages"]:
        table.add_row(package["name"], str(package["length"]), package["sha256"])
    console.print(table)
    keys = Table(title="Signing keys")
    for column in ("keyid", "role", "created", "retired"):
        keys.add_column(column)
    for key in found["keys"]:
        keys.add_row(key["keyid"][:16], key["role"], key["created_at"][:19], (key["retired_at"] or "—")[:19])
    console.print(keys)


@packages_app.command("rotate-key")
def packages_rotate_key(
    role: Annotated[str, typer.Argument(help="root or targets")],
) -> None:
    """Replace the root or targets key: a new root version lists the new key; the old key is retired."""
    from carlink.errors import CarlinkError
    from carlink.fod import service

    async def work(session: AsyncSession) -> tuple[str, int, int]:
        key = await service.rotate_key(session, role)
        root = await service.current_root(session)
        targets = await service.current_targets(session)
        return key.keyid, root.version, targets.version

    try:
        keyid, root_version, targets_version = _in_transaction(work)
    except CarlinkError as exc:
        raise _fail(exc.message) from exc
    console.print(
        f"new {role} key {keyid[:16]}…; root version {root_version}, targets version {targets_version}"
    )
