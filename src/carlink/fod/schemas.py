"""JSON shapes of functions, function orders, updates and campaigns (owner and operator APIs share them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carlink.catalog import service as catalog
from carlink.catalog.money import format_money
from carlink.fod.functions import FunctionStatus
from carlink.fod.models import Delivery, FunctionOrder, UpdateCampaign, UpdateConsent


class FunctionOrderIn(BaseModel):
    # JSON types as declared: no true for 1, no "1" for 1 (a client bug shows, not a guess; issue 9)
    model_config = ConfigDict(strict=True)
    offer_id: int
    payment_method_id: int
    accept_terms: bool = False


class ConsentIn(BaseModel):
    model_config = ConfigDict(strict=True)
    enabled: bool


class CampaignIn(BaseModel):
    model_config = ConfigDict(strict=True)
    name: str = Field(min_length=1, max_length=120)
    package: str = Field(min_length=1, max_length=200)
    model_key: str = Field(min_length=1, max_length=32)
    variants: list[str] = Field(default_factory=list, max_length=20)
    version_from: str = Field(min_length=1, max_length=32)
    version_below: str = Field(min_length=1, max_length=32)
    to_version: str = Field(min_length=1, max_length=32)
    waves: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1, max_length=10)
    success_threshold: int = 90
    error_threshold: int = 10


def delivery_out(row: Delivery | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": row.id,
        "kind": row.kind,
        "package": row.package,
        "state": row.state,
        "reason": row.reason,
        "have": row.have,
        "length": row.length,
        "failures": row.failures,
        "updated_at": row.updated_at.isoformat(),
    }


def order_out(order: FunctionOrder, language: str) -> dict[str, Any]:
    return {
        "id": order.id,
        "number": order.number,
        "function": order.service_code,
        "name": order.service_name,
        "term": order.term,
        "term_label": catalog.term_label(order.term, order.line["term_months"], language),
        "price": format_money(order.price_minor, order.currency, language),
        "price_minor": order.price_minor,
        "currency": order.currency,
        "state": order.state,
        "reason": order.reason,
        "download_by": order.download_by.isoformat(),
        "created_at": order.created_at.isoformat(),
        "activated_at": order.activated_at.isoformat() if order.activated_at else None,
        "contract_id": order.contract_id,
    }


def function_out(item: FunctionStatus, language: str) -> dict[str, Any]:
    contract = item.contract
    return {
        "code": item.service.code,
        "name": catalog.service_name(item.service, language),
        "description": catalog.service_description(item.service, language),
        "state": item.state,
        "offers": [
            {
                "id": offer.id,
                "term": offer.term,
                "term_label": catalog.term_label(offer.term, offer.term_months, language),
                "recurring": offer.recurring,
                "price": format_money(offer.price_minor, offer.currency, language),
                "price_minor": offer.price_minor,
                "currency": offer.currency,
            }
            for offer in item.offers
        ],
        "order": order_out(item.order, language) if item.order else None,
        "delivery": delivery_out(item.delivery),
        "contract": {
            "id": contract.id,
            "number": contract.number,
            "state": contract.state,
            "term": contract.term,
            "ends_at": contract.ends_at.isoformat(),
            "auto_renew": contract.auto_renew,
        }
        if contract
        else None,
    }


def consent_out(row: UpdateConsent | None) -> dict[str, Any]:
    return {
        "enabled": bool(row and row.enabled),
        "changed_at": row.at.isoformat() if row else None,
        "policy_version": row.policy_version if row else None,
    }


def campaign_out(row: UpdateCampaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "package": row.package,
        "model_key": row.model_key,
        "variants": row.variants,
        "version_from": row.version_from,
        "version_below": row.version_below,
        "to_version": row.to_version,
        "waves": row.waves,
        "wave": row.wave,
        "success_threshold": row.success_threshold,
        "error_threshold": row.error_threshold,
        "state": row.state,
        "paused_reason": row.paused_reason,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "cars": counts if counts is not None else None,
    }


def update_out(delivery: Delivery, campaign: UpdateCampaign) -> dict[str, Any]:
    return {
        "campaign": campaign.id,
        "name": campaign.name,
        "to_version": campaign.to_version,
        **(delivery_out(delivery) or {}),
    }
