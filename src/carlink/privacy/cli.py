"""`carlink countries`: operators list the countries and set or clear a privacy contact address (PRV-2,
PRV-3) from the command line; every change is audit-logged like one made in the operator console."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from carlink.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

countries_app = typer.Typer(
    help="Countries: privacy contact addresses for revocation by email (PRV-2, PRV-3).", no_args_is_help=True
)
console = Console()


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One unit of work against the configured database, migrated and with the countries seeded."""
    from carlink.db.migrate import run_migrated
    from carlink.partners.seed import ensure_countries

    return run_migrated(get_settings().database_url, work, ensure_countries)


@countries_app.command("list")
def countries_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Every country with its privacy contact address (none: revocation goes through the dealer)."""
    from rich.table import Table

    from carlink.partners import service as partners

    async def work(session: AsyncSession) -> list[dict[str, str | None]]:
        return [
            {"code": c.code, "privacy_contact": c.privacy_contact} for c in await partners.countries(session)
        ]

    rows = _in_transaction(work)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="Privacy contacts")
    table.add_column("country")
    table.add_column("contact address")
    for row in rows:
        table.add_row(str(row["code"]), row["privacy_contact"] or "— (through the dealer)")
    console.print(table)


@countries_app.command("set-contact")
def countries_set_contact(
    code: Annotated[str, typer.Argument(help="ISO 3166 country code, e.g. DE")],
    address: Annotated[str, typer.Argument(help="the email address; leave out to clear it")] = "",
) -> None:
    """Set a country's privacy contact address, or clear it so people there go through their dealer."""
    from carlink.errors import CarlinkError
    from carlink.privacy import service

    async def work(session: AsyncSession) -> str | None:
        country = await service.set_privacy_contact(session, code, address, actor_id=None, actor_role="cli")
        return country.privacy_contact

    try:
        saved = _in_transaction(work)
    except CarlinkError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    shown = saved or "none: revocation goes through the dealer"
    console.print(f"{code.strip().upper()[:2]}: {shown}")
