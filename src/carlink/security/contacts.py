"""How a customer reaches the 24/7 security operations centre (SEC-1): phone, email and hours per country.

SEC-1 says the customer can call the SOC at any time, so these are shown to every user of a car, with a
package or without. The numbers are invented (reserved ranges, example.com) like all demo data.
"""

from __future__ import annotations

from dataclasses import dataclass

from carlink.i18n import N_, _


@dataclass(frozen=True)
class SocContact:
    country: str
    phone: str
    email: str
    hours: str
    languages: tuple[str, ...]


# Translated where shown (`contact_out`, the Car security page).
HOURS = N_("24 hours, every day")
_CONTACTS = {
    contact.country: contact
    for contact in (
        SocContact("DE", "+49 69 555 0190", "soc.de@example.com", HOURS, ("de", "en")),
        SocContact("AT", "+43 1 555 0190", "soc.at@example.com", HOURS, ("de", "en")),
        SocContact("CH", "+41 44 555 0190", "soc.ch@example.com", HOURS, ("de", "fr", "en")),
        SocContact("JP", "+81 3 5555 0190", "soc.jp@example.com", HOURS, ("ja", "en")),
    )
}
# Countries without a SOC desk of their own reach the international desk, in English.
INTERNATIONAL = SocContact("", "+44 20 7946 0190", "soc@example.com", HOURS, ("en",))


def soc_contact(country: str) -> SocContact:
    """The SOC desk for a car registered in `country` (ISO 3166 alpha-2)."""
    return _CONTACTS.get(country.upper(), INTERNATIONAL)


def contact_out(contact: SocContact) -> dict[str, object]:
    return {
        "phone": contact.phone,
        "email": contact.email,
        "hours": _(contact.hours),
        "languages": list(contact.languages),
    }
