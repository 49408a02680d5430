"""The JSON APIs of functions on demand and software updates over real HTTP (docs/fod.md): who may do what
on which car, stable error codes, one order per double submit, campaigns for operators only."""

from __future__ import annotations

from typing import Any

from carlink.demo import world
from tests.support.purchases import VISA
from tests.support.stack import NINE_ELEVEN, TAYCAN, Stack

CAMPAIGN = {
    "name": "Taycan infotainment 1.2",
    "package": "function-lane-assist",  # any signed package will do for the API
    "model_key": "taycan-1",
    "version_from": "1.0.0",
    "version_below": "1.2.0",
    "to_version": "1.2.0",
    "waves": [100],
}


def offer_of(functions: dict[str, Any], code: str, term: str) -> int:
    found = next(f for f in functions["functions"] if f["code"] == code)
    return int(next(o for o in found["offers"] if o["term"] == term)["id"])


async def test_people_of_the_car_see_its_functions_and_only_the_main_user_orders(stack: Stack) -> None:
    owner, family, stranger = (
        await stack.as_user(world.OWNER),
        await stack.as_user(world.FAMILY),
        await stack.as_user(world.STRANGER),
    )
    listing = await owner.get(f"/api/v1/vehicles/{TAYCAN}/functions")
    assert listing.status_code == 200 and listing.json()["can_order"] is True
    functions = listing.json()
    assert {f["code"] for f in functions["functions"]} >= {"adaptive-cruise", "power-boost", "lane-assist"}
    seen_by_family = await family.get(f"/api/v1/vehicles/{TAYCAN}/functions")
    assert seen_by_family.status_code == 200 and seen_by_family.json()["can_order"] is False
    for path in (f"/api/v1/vehicles/{TAYCAN}/functions", f"/api/v1/vehicles/{TAYCAN}/software-updates"):
        hidden = await stranger.get(path)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "vehicle_not_found"
    assert (await stack.http.get(f"/api/v1/vehicles/{TAYCAN}/functions")).status_code == 401

    card = await owner.post("/api/v1/store/payment-methods", json=VISA)
    assert card.status_code == 201, card.text
    body = {
        "offer_id": offer_of(functions, "adaptive-cruise", "P1M"),
        "payment_method_id": card.json()["id"],
        "accept_terms": True,
    }
    refused = await family.post(f"/api/v1/vehicles/{TAYCAN}/functions/orders", json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "owner_only"
    first = await owner.post(f"/api/v1/vehicles/{TAYCAN}/functions/orders", json=body)
    assert first.status_code == 201, first.text
    again = await owner.post(f"/api/v1/vehicles/{TAYCAN}/functions/orders", json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert first.json()["state"] == "ordered" and first.json()["term_label"] == "Monthly"
    orders = (await family.get(f"/api/v1/vehicles/{TAYCAN}/functions/orders")).json()
    assert [o["number"] for o in orders] == [first.json()["number"]]

    cannot_have = await owner.get(f"/api/v1/vehicles/{NINE_ELEVEN}/functions")
    assert "power-boost" not in {f["code"] for f in cannot_have.json()["functions"]}
    boost = await owner.post(
        f"/api/v1/vehicles/{NINE_ELEVEN}/functions/orders",
        json=body | {"offer_id": offer_of(functions, "power-boost", "LIFE")},
    )
    assert boost.status_code == 422 and boost.json()["error"]["code"] == "service_not_available"
    garbage = await owner.post(f"/api/v1/vehicles/{TAYCAN}/functions/orders", json={"offer_id": "x"})
    assert garbage.status_code == 422
    foreign = await stranger.post(f"/api/v1/function-orders/{first.json()['id']}/cancellation")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "function_order_not_found"


async def test_updates_are_switched_per_car_and_campaigns_belong_to_operators(stack: Stack) -> None:
    owner, family, operator = (
        await stack.as_user(world.OWNER),
        await stack.as_user(world.FAMILY),
        await stack.as_user(world.OPERATOR),
    )
    before = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/software-updates")).json()
    assert before["consent"]["enabled"] is False and before["software_version"] == "1.0.0"
    refused = await family.put(f"/api/v1/vehicles/{TAYCAN}/software-updates/consent", json={"enabled": True})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "owner_only"
    switched = await owner.put(f"/api/v1/vehicles/{TAYCAN}/software-updates/consent", json={"enabled": True})
    assert switched.status_code == 200 and switched.json()["enabled"] is True
    assert switched.json()["changed_at"] and switched.json()["policy_version"] == 1

    not_operator = await owner.post("/api/v1/operator/campaigns", json=CAMPAIGN)
    assert not_operator.status_code == 403
    nobody = await operator.post(
        "/api/v1/operator/campaigns",
        json=CAMPAIGN | {"version_from": "5.0.0", "version_below": "6.0.0", "to_version": "6.0.0"},
    )
    assert nobody.status_code == 422 and nobody.json()["error"]["code"] == "campaign_targets_no_car"
    created = await operator.post("/api/v1/operator/campaigns", json=CAMPAIGN)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["matching"] >= 1 and campaign["consented"] == 1 and campaign["state"] == "running"
    detail = (await operator.get(f"/api/v1/operator/campaigns/{campaign['id']}")).json()
    assert [car["vin"] for car in detail["vehicles"]] == [TAYCAN]
    assert detail["vehicles"][0]["state"] in {
        "offered",
        "downloading",
        "downloaded",
        "installing",
        "installed",
    }
    mine = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/software-updates")).json()
    assert [u["name"] for u in mine["updates"]] == [CAMPAIGN["name"]]
    unknown = await operator.post(f"/api/v1/operator/campaigns/{campaign['id']}/explode")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_action"
    missing = await operator.get("/api/v1/operator/campaigns/99999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "campaign_not_found"
    paused = await operator.post(f"/api/v1/operator/campaigns/{campaign['id']}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    cancelled = await operator.post(f"/api/v1/operator/campaigns/{campaign['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    resumed = await operator.post(f"/api/v1/operator/campaigns/{campaign['id']}/resume")
    assert resumed.status_code == 409 and resumed.json()["error"]["code"] == "campaign_state"
