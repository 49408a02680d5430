"""What the store's portal pages share: rendering with money, terms and the accepted card brands (STO-5),
the signed-in person and the form's CSRF check, and reading ids and VINs from addresses and forms.

The store's pages (store.pages: the store, cart, checkout and orders; store.services_pages: the car's
Services, selling the car, the person's cards and address) call the same use cases as the JSON API
(store.api). Payment-gateway calls run outside our own transactions, as there: the gateway keeps its own
books, and on SQLite units of work take turns. Every form carries the session's CSRF token and answers with
a redirect; a refusal shows the form again with the reason. The words live in the templates
(templates/store/); a message from the domain is shown in the request's
language (CarlinkError.message).
"""

import re
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.catalog import service as catalog
from carlink.catalog.countries import BRAND_NAMES, store_country
from carlink.catalog.money import format_money
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Unauthorised, vehicle_not_found
from carlink.garage import service as garage
from carlink.i18n import BABEL_LOCALES
from carlink.identity import service as identity
from carlink.identity.access import Caller, check_csrf, cookie_caller
from carlink.identity.models import Account, StaffRole
from carlink.store import service
from carlink.store.payments import CardInput
from carlink.web.templating import page

BRAND_BY_CODE = {brand.value: name for brand, name in BRAND_NAMES.items()}
_ID = re.compile(r"[0-9]{1,10}")


# --- rendering and the caller ------------------------------------------------------------------------------


def page_language(account: Account | None) -> str:
    """The profile's language; without a profile (or with one we do not speak), the request's."""
    if account is not None and account.locale in BABEL_LOCALES:
        return account.locale
    return i18n.current()


def render(
    request: Request, name: str, caller: Caller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A store page: the request's language (the profile's when signed in) for the words, money, dates
    and terms, and the card brands of the person's country for the foot of the page (STO-5)."""
    account = caller.account if caller else None
    language = i18n.current()
    shop = store_country(account.country) if account else None

    def money(amount_minor: int, currency: str) -> str:
        return format_money(amount_minor, currency, language)

    def term_label(term: str, months: int) -> str:
        return catalog.term_label(term, months, language)

    context.setdefault("section", "vehicles")
    return page(
        request,
        name,
        status=status,
        account=account,
        csrf_token=caller.web_session.csrf_token if caller and caller.web_session else "",
        accepted_brands=[BRAND_NAMES[brand] for brand in shop.brands] if shop else [],
        money=money,
        term_label=term_label,
        day=i18n.date,
        service_name=lambda row: catalog.service_name(row, language),
        service_description=lambda row: catalog.service_description(row, language),
        brand_name=lambda code: BRAND_BY_CODE.get(code, code),
        **context,
    )


async def current_caller(request: Request, session: AsyncSession) -> Caller | None:
    """The signed-in person; remembered on the request so an error page keeps the menu."""
    caller = await cookie_caller(request, session)
    request.state.caller = caller
    return caller


async def form_caller(request: Request, session: AsyncSession, csrf_token: str) -> Caller:
    """The person sending a form, which must carry the token of their session."""
    caller = await current_caller(request, session)
    if caller is None:
        raise Unauthorised("your session has ended; sign in again", code="unauthorised")
    check_csrf(caller, csrf_token)
    return caller


async def staff_caller(
    request: Request, session: AsyncSession, role: str, csrf_token: str | None = None
) -> tuple[Caller, StaffRole] | None:
    """The staff member at a console page: None when nobody is signed in (the page then goes to sign-in),
    403 `staff_only` without the role; a form (`csrf_token` given) must carry the session's token."""
    if csrf_token is None:
        caller = await current_caller(request, session)
        if caller is None:
            return None
    else:
        caller = await form_caller(request, session, csrf_token)
    return caller, await identity.require_staff(session, caller.account, role)


def to_signin(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def path_vin(raw: str) -> str:
    """A malformed VIN in the address is just another vehicle that is not in the garage."""
    try:
        return garage.checked_vin(raw)
    except CarlinkError as error:
        raise vehicle_not_found(raw[:17]) from error


def form_number(raw: str) -> int:
    """An id or revision from a form or an address; 0, which no row has, for anything else."""
    raw = raw.strip()
    if not _ID.fullmatch(raw):
        return 0
    value = int(raw)
    return value if value <= service.MAX_ID else 0


def form_status(error: CarlinkError) -> int:
    # A refused form is a 4xx page of its own, not a missing sign-in or page (as in web.pages).
    return 400 if error.status in (401, 404) else error.status


def refused(error: CarlinkError) -> dict[str, Any]:
    """What a page shows of a refused form: its status, the message in the reader's language, the code."""
    return {"status": form_status(error), "error": error.message, "error_code": error.code}


def step_url(vin: str, step: str) -> str:
    """Where a cart's next step (CartView.next_step: cart -> address -> payment -> review) is (STO-3)."""
    return f"/vehicles/{vin}/cart" if step == "cart" else f"/vehicles/{vin}/checkout/{step}"


def card_years() -> list[int]:
    this_year = utcnow().year
    return list(range(this_year, this_year + 16))


def typed_card(number: str, exp_month: str, exp_year: str, cvc: str, holder: str) -> CardInput:
    """The card as typed; the number goes to the gateway once and is never kept or shown again."""
    return CardInput(number, form_number(exp_month), form_number(exp_year), cvc.strip(), holder.strip())
