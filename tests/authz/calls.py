"""How the matrix calls each route: which object fills each path parameter, and the body it sends.

Bodies are valid in shape (so the framework's 422 never answers before the route asks who is calling) but
harmless in effect where a permitted call would destroy shared state: wrong current passwords, a stale cart
revision, ids no row has, empty forms. The few calls that must act for real (removing a person, leaving the
car, withdrawing a contract) run last (`LAST`), and the car's people are put back after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.support.purchases import ADDRESS

NO_ROW = 2147483647  # an id no row has, within the API's 32-bit bound
NO_COMMAND = "00000000-0000-4000-8000-000000000000"  # a command id no command has

# Path parameters that name different objects on different routes: (route prefix, parameter) -> value key.
PARAMETER_OBJECTS: dict[tuple[str, str], str] = {
    ("DELETE /api/v1/vehicles/{vin}/users/", "account_id"): "member_for_api",
    ("POST /vehicles/{vin}/people/", "account_id"): "member_for_page",
    ("GET /dealer/customers/", "account_id"): "owner_id",
    ("POST /api/v1/function-orders/", "order_id"): "function_order_id",
    ("POST /vehicles/{vin}/functions/orders/", "order_id"): "function_order_id",
    ("POST /vehicles/{vin}/service/", "appointment_id"): "appointment_for_page",
    ("POST /operator/recalls/", "campaign_id"): "recall_id",
    ("GET /app/pictures/", "token"): "picture_token",
}
FIXED_PARAMETERS = {"action": "pause"}


# JSON bodies of the API, and `{name}` placeholders filled from the objects (and `{role}`, the caller).
JSON: dict[str, dict[str, Any]] = {
    "POST /api/v1/accounts": {"email": "owner@example.com", "password": "x", "country": "DE"},
    "DELETE /api/v1/me": {"password": "not-the-password"},
    "POST /api/v1/me/password": {"current_password": "not-the-password", "new_password": "n3w-Passw0rd-long"},
    "PUT /api/v1/me/pin": {"password": "not-the-password", "pin": "9876"},
    "POST /api/v1/invitations/{token}/accept": {
        "password": "x",
        "partner_id": "{partner_id}",
        "accept_privacy_policy": False,
    },
    "POST /api/v1/invitations/resend": {"email": "matrix.{role}@example.com"},
    "POST /api/v1/vehicles/{vin}/users": {"email": ""},
    "POST /api/v1/vehicles/{vin}/commands": {"type": "HONK_FLASH"},
    "POST /api/v1/store/payment-methods": {
        "number": "0000 0000 0000",
        "exp_month": 1,
        "exp_year": 2000,
        "cvc": "000",
    },
    "PUT /api/v1/store/billing-address": ADDRESS,
    "POST /api/v1/store/orders/{order_id}/challenge": {"code": "x"},
    "POST /api/v1/vehicles/{vin}/cart/lines": {"offer_id": NO_ROW},
    "PUT /api/v1/vehicles/{vin}/cart/billing": ADDRESS,
    "PUT /api/v1/vehicles/{vin}/cart/payment-method": {"payment_method_id": "{method_id}"},
    "POST /api/v1/vehicles/{vin}/cart/checkout": {"revision": NO_ROW},
    "PUT /api/v1/me/preferred-partner": {"partner_id": "{partner_id}"},
    "POST /api/v1/vehicles/{vin}/appointments": {"slot_id": NO_ROW},
    "POST /api/v1/me/privacy/accept": {"version": 1},
    "POST /api/v1/me/privacy/consent": {"granted": False},
    "POST /api/v1/me/privacy/erasure": {"password": "not-the-password"},
    "PUT /api/v1/me/in-car-settings": {},
    "POST /api/v1/vehicles/{vin}/functions/orders": {"offer_id": NO_ROW, "payment_method_id": NO_ROW},
    "PUT /api/v1/vehicles/{vin}/software-updates/consent": {"enabled": False},
    "POST /api/v1/operator/campaigns": {
        "name": "x",
        "package": "no-such-package",
        "model_key": "taycan-1",
        "version_from": "1.0.0",
        "version_below": "1.0.1",
        "to_version": "1.0.1",
    },
    "PUT /api/v1/vehicles/{vin}/security/phone": {"phone": "x"},
    "POST /api/v1/vehicles/{vin}/security/mode": {"kind": "x", "hours": 0},
    "POST /app/connect/v1/vehicles/{vin}/commands": {"key": "HONK_FLASH", "payload": {}},
    # The portal's unlock is sent by the page's script: JSON with the CSRF token in a header.
    "POST /vehicles/{vin}/unlock": {"pin": "0000"},
}
# Form fields of the portal's posts (the CSRF token is added by the signed-in browser).
FORMS: dict[str, dict[str, str]] = {
    "POST /register/resend": {"email": "matrix.{role}@example.com"},
    "POST /account/language": {"language": "en"},
    "POST /vehicles/{vin}/cart/add": {"offer_id": str(NO_ROW)},
    "POST /vehicles/{vin}/checkout/confirm": {"revision": str(NO_ROW)},
    # The dealer's forms name the car: the car's dealer acts on it (harmlessly), another dealer must not
    # learn it exists.
    "POST /dealer/security-modes": {"vin": "{vin}", "kind": "service", "hours": "1"},
    "POST /dealer/driver-cards": {"vin": "{vin}", "serial": "MATRIX02", "label": ""},
    # A complete sale of the used Taycan to an address without an ID: it invites, the car stays the owner's
    # until the buyer registers (docs/people.md); runs last.
    "POST /dealer/sales": {
        "vin": "{vin}",
        "model": "taycan-1",
        "variant": "Y1ADB1",
        "model_year": "2023",
        "colour": "Frozen Blue",
        "buyer_email": "matrix.used.buyer@example.com",
        "buyer_name": "Used Buyer",
        "buyer_country": "DE",
        "language": "en",
        "delivery_date": "",
    },
    "POST /dealer/security-modes/end": {"vin": "{vin}"},
    "POST /dealer/appointments": {"vin": "{vin}", "slot_id": str(NO_ROW)},
    "POST /dealer/appointments/recalls/done": {"vin": "{vin}", "recall_id": str(NO_ROW)},
    "POST /vehicles/{vin}/service/book": {"slot_id": str(NO_ROW)},
    "POST /vehicles/{vin}/security/mode": {"kind": "x", "hours": "0"},
    "POST /vehicles/{vin}/security/phone": {"phone": "x"},
}
# Query strings a route needs to do its work.
QUERIES: dict[str, str] = {
    "GET /api/v1/help/search": "?q=roaming",
    "GET /help/search": "?q=roaming",
    "GET /api/v1/partners": "?country=DE",
}
# Calls that act for real when permitted, in this order after every other row; the car's people are put
# back after each (`restore`).
LAST = (
    "POST /api/v1/store/contracts/{contract_id}/cancellation",
    "POST /vehicles/{vin}/services/{contract_id}/cancel",
    "POST /api/v1/store/contracts/{contract_id}/withdrawal",
    "POST /vehicles/{vin}/services/{contract_id}/withdraw",
    "DELETE /api/v1/store/payment-methods/{method_id}",
    "POST /dealer/sales",
    "POST /dealer/sales/{sale_id}/resend",
    "POST /dealer/sales/{sale_id}/withdraw",
    "DELETE /api/v1/vehicles/{vin}/membership",
    "POST /vehicles/{vin}/remove",
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # with the objects filled in
    json: Any = None
    form: dict[str, str] | None = None

    @property
    def api(self) -> bool:
        """Calls with a bearer token (the app API, the compat facade, the identity service's JSON); all
        others are a browser's, with the session cookie."""
        return self.path.startswith(("/api/", "/app/", "/userinfo", "/openapi.json"))


def call_for(
    route: str, values: dict[str, str], *, vin: str | None = None, unknown_object: bool = False
) -> Call:
    """The request of `route` ("METHOD /path") on the objects; `vin` replaces the car (the unknown VIN),
    `unknown_object` every other id of the path with one no row has."""
    method, template = route.split(" ", 1)
    filled = dict(values) | ({"vin": vin} if vin else {})
    path = template
    for name in _parameters(template):
        if unknown_object and name in object_parameters(route):
            path = path.replace("{" + name + "}", str(NO_ROW) if name != "command_id" else NO_COMMAND)
            continue
        key = next(
            (
                key
                for (prefix, param), key in PARAMETER_OBJECTS.items()
                if param == name and route.startswith(prefix)
            ),
            name,
        )
        value = FIXED_PARAMETERS.get(name) or filled[key]
        path = path.replace("{" + name + "}", value)
    path += QUERIES.get(route, "")
    body = _fill(JSON.get(route), filled)
    form = _fill(FORMS.get(route), filled)
    return Call(method, path, json=body, form=form if method != "GET" else None)


def object_parameters(route: str) -> list[str]:
    """The path's ids of objects other than the car (the ones `unknown_object` replaces)."""
    return [name for name in _parameters(route) if name.endswith("_id") and name != "partner_id"]


def names_the_car_in_its_form(route: str) -> bool:
    """A dealer's form naming the Taycan: another dealer must get the answer of a VIN that does not exist.
    Not the sale: a VIN that does not exist is a new car the dealer may sell (docs/people.md)."""
    form = FORMS.get(route, {})
    return route != "POST /dealer/sales" and "{vin}" in form.values()


def with_role(call: Call, role: str) -> Call:
    """The call's body with `{role}` filled: throttles per address then count each caller apart."""
    tag = role.replace(" ", "-")
    return Call(call.method, call.path, _fill(call.json, {"role": tag}), _fill(call.form, {"role": tag}))


def _parameters(template: str) -> list[str]:
    return re.findall(r"{([a-z_]+)}", template)


def _fill(body: Any, values: dict[str, str]) -> Any:
    if isinstance(body, dict):
        return {key: _fill(value, values) for key, value in body.items()}
    if isinstance(body, str) and "{" in body:
        name = body[1:-1]
        if body.startswith("{") and body.endswith("}") and name in values and values[name].isdigit():
            return int(values[name])  # an id in a JSON body is a number
        for key, value in values.items():
            body = body.replace("{" + key + "}", value)
    return body
