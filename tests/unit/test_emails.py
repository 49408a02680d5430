"""Email texts (notify.emails): every mail in every language, with all it must say and nothing left blank."""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest

from carlink.i18n import LANGUAGES
from carlink.notify.emails import TEMPLATE_NAMES, TEMPLATES, render

VIN = "WP0ZZZY1ZPS100001"
TERMS_BODY = "1. Scope\nThese terms apply to every connected service ordered in the carlink store.\n"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

SAMPLES: dict[str, dict[str, Any]] = {
    "order_confirmation": {
        "name": "Anna Schmidt",
        "order_number": "CL-2024-000017",
        "vin": VIN,
        "vehicle_name": "Taycan 4S",
        "lines": [
            {
                "service_name": "Remote Services",
                "term_label": "12 months",
                "price": "€0.00",
                "trial": True,
                "starts": "3 June 2024",
                "ends": "2 June 2025",
            },
            {
                "service_name": "Connect Data Package",
                "term_label": "1 month",
                "price": "€9.90",
                "trial": False,
                "starts": "3 June 2024",
                "ends": "2 July 2024",
            },
        ],
        "total": "€9.90",
        "payment": "VISA •••• 4242",
        "terms": [
            {"title": "General terms", "version": "2024-05", "body": TERMS_BODY},
            {"title": "Connect Data Package terms", "version": "3", "body": "Data is for use in the car."},
        ],
        "withdrawal_days": 14,
        "services_url": "https://carlink.example.com/services",
    },
    "withdrawal_confirmation": {
        "name": "Anna Schmidt",
        "service_name": "Connect Data Package",
        "vin": VIN,
        "contract_number": "C-000042",
        "refund": "€9.90",
    },
    "subscription_renewed": {
        "name": "Anna Schmidt",
        "service_name": "Connect Data Package",
        "vin": VIN,
        "amount": "€9.90",
        "until": "2 August 2024",
    },
    "subscription_cancelled": {
        "name": "Anna Schmidt",
        "service_name": "Connect Data Package",
        "vin": VIN,
        "until": "2 August 2024",
    },
    "renewal_failed": {
        "name": "Anna Schmidt",
        "service_name": "Connect Data Package",
        "vin": VIN,
        "reason": "The card has expired.",
    },
    "contract_expired": {"name": "Anna Schmidt", "service_name": "Remote Services", "vin": VIN},
    "data_package_expired": {"name": "Anna Schmidt", "service_name": "Connect Data Package", "vin": VIN},
    "order_refunded": {
        "name": "Anna Schmidt",
        "order_number": "CL-2024-000017",
        "amount": "€9.90",
        "reason": "Withdrawal within 14 days.",
    },
    "order_cancelled": {
        "name": "Anna Schmidt",
        "order_number": "CL-2024-000018",
        "service_name": "Sport Chrono",
        "vin": VIN,
        "reason": "The car did not download the function within 28 days.",
    },
    "invitation": {
        "name": "Anna Schmidt",
        "dealer_name": "Autohaus Example Stuttgart",
        "vehicle_name": "Taycan 4S",
        "vin": VIN,
        "link": "https://carlink.example.com/register/abc",
        "resend_link": "https://carlink.example.com/register/resend",
        "expires": "17 June 2024",
    },
    "vehicle_added": {
        "name": "Anna Schmidt",
        "dealer_name": "Autohaus Example Stuttgart",
        "vehicle_name": "Taycan 4S",
        "vin": VIN,
        "link": "https://carlink.example.com/vehicles/" + VIN,
    },
    "account_deleted": {"name": "Anna Schmidt", "email": "anna@example.com"},
    "erasure_completed": {"requested_on": "3 June 2024", "request_number": "ER-000017"},
    "appointment_booked": {
        "name": "Anna Schmidt",
        "vin": VIN,
        "partner_name": "Autohaus Example Stuttgart",
        "partner_address": "Beispielweg 12, 70173 Stuttgart",
        "partner_phone": "+49 711 555 0100",
        "partner_email": "service.stuttgart@example.com",
        "when": "3 Jun 2024, 09:00 (Europe/Berlin)",
        "kind": "service",
        "booked_by": "customer",
        "note": "The brakes squeak",
    },
    "recall_notice": {
        "name": "Anna Schmidt",
        "vin": VIN,
        "code": "RC-2024-001",
        "title": "Rear seat belt buckle",
        "description": "The buckle may not latch firmly.",
        "remedy": "The workshop replaces both buckles.",
    },
    "function_ordered": {
        "name": "Anna Schmidt",
        "order_number": "FD-0000007",
        "service_name": "Adaptive cruise control",
        "vin": VIN,
        "term_label": "Permanent, for the car's life",
        "price": "€1,190.00",
        "download_by": "1 July 2024",
        "download_days": 28,
        "reason": "",
    },
    "function_order_cancelled": {
        "name": "Anna Schmidt",
        "order_number": "FD-0000007",
        "service_name": "Adaptive cruise control",
        "vin": VIN,
        "term_label": "Monthly",
        "price": "€19.00",
        "download_by": "1 July 2024",
        "download_days": 28,
        "reason": "",
    },
    "function_payment_failed": {
        "name": "Anna Schmidt",
        "order_number": "FD-0000007",
        "service_name": "Adaptive cruise control",
        "vin": VIN,
        "term_label": "Monthly",
        "price": "€19.00",
        "download_by": "1 July 2024",
        "download_days": 28,
        "reason": "processing_error",
    },
}


def test_every_mail_has_a_sample_and_a_template_in_every_language() -> None:
    assert set(SAMPLES) == TEMPLATE_NAMES
    for language in LANGUAGES:
        written = {path.stem for path in (TEMPLATES / language).glob("*.txt")}
        assert written - {"_signature"} == TEMPLATE_NAMES, language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATE_NAMES))
def test_every_mail_renders_in_every_language(template: str, language: str) -> None:
    mail = render(template, language, SAMPLES[template])
    assert mail.language == language
    assert mail.subject and "\n" not in mail.subject
    assert not mail.text.startswith("Subject:")
    assert mail.text.endswith("\n") and not mail.text.endswith("\n\n")
    if "name" in SAMPLES[template]:
        assert "Anna Schmidt" in mail.text
    assert "{{" not in mail.text and "{%" not in mail.text
    for key in ("vin", "order_number", "reason", "amount", "until", "contract_number", "refund"):
        if key in SAMPLES[template]:
            assert SAMPLES[template][key] in mail.text, key


@pytest.mark.parametrize("template", sorted(TEMPLATE_NAMES))
def test_japanese_mails_are_written_in_japanese(template: str) -> None:
    mail = render(template, "ja", SAMPLES[template])
    assert JAPANESE.search(mail.subject)
    assert JAPANESE.search(mail.text)
    assert "Hello" not in mail.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_order_confirmation_lists_every_line_and_prints_every_terms_version_in_full(language: str) -> None:
    sample = SAMPLES["order_confirmation"]
    mail = render("order_confirmation", language, sample)
    for line in sample["lines"]:
        assert line["service_name"] in mail.text
        assert line["price"] in mail.text
    for terms in sample["terms"]:
        assert terms["title"] in mail.text
        assert terms["body"].strip() in mail.text
    assert "VISA •••• 4242" in mail.text
    assert sample["services_url"] in mail.text
    assert "14" in mail.text
    # The terms come last, after everything else the mail says.
    assert mail.text.rstrip().endswith(sample["terms"][-1]["body"])


def test_order_confirmation_says_the_contract_is_concluded_and_explains_withdrawal() -> None:
    mail = render("order_confirmation", "en", SAMPLES["order_confirmation"])
    assert "contract is concluded" in mail.text
    assert "ready to use straight away" in mail.text
    assert "withdraw from this contract within 14 days" in mail.text
    assert "free of charge" in mail.text
    german = render("order_confirmation", "de", SAMPLES["order_confirmation"])
    assert "Vertrag zustande" in german.text and "binnen 14 Tagen" in german.text


def test_order_confirmation_without_payment_says_nothing_was_paid() -> None:
    sample = {**SAMPLES["order_confirmation"], "payment": None}
    assert "This order needed no payment." in render("order_confirmation", "en", sample).text


def test_withdrawal_without_refund_says_there_is_nothing_to_refund() -> None:
    sample = {**SAMPLES["withdrawal_confirmation"], "refund": None}
    assert "nothing to refund" in render("withdrawal_confirmation", "en", sample).text


def test_data_package_mail_says_the_hotspot_is_off_but_the_app_still_reaches_the_car() -> None:
    text = render("data_package_expired", "en", SAMPLES["data_package_expired"]).text
    assert "switched off" in text and "hotspot" in text
    assert "carlink app and your car is not affected" in text
    assert "buy a new data package" in text


def test_a_missing_context_key_fails_instead_of_leaving_a_gap() -> None:
    context = dict(SAMPLES["subscription_renewed"])
    del context["amount"]
    with pytest.raises(jinja2.UndefinedError):
        render("subscription_renewed", "de", context)


def test_a_missing_key_in_a_line_of_the_order_fails_too() -> None:
    lines = [{k: v for k, v in SAMPLES["order_confirmation"]["lines"][0].items() if k != "price"}]
    with pytest.raises(jinja2.UndefinedError):
        render("order_confirmation", "en", {**SAMPLES["order_confirmation"], "lines": lines})


@pytest.mark.parametrize(("asked", "written"), [("fr", "en"), ("", "en"), ("de-AT", "de"), ("ja_JP", "ja")])
def test_a_language_without_texts_falls_back_to_english(asked: str, written: str) -> None:
    mail = render("contract_expired", asked, SAMPLES["contract_expired"])
    assert mail.language == written


@pytest.mark.parametrize("template", ["no_such_mail", "_signature", "../en/contract_expired", ""])
def test_an_unknown_template_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="no email template"):
        render(template, "en", SAMPLES["contract_expired"])


def test_a_line_break_in_a_value_cannot_reach_the_subject_header() -> None:
    sample = {**SAMPLES["contract_expired"], "service_name": "Remote\nBcc: someone@example.com"}
    mail = render("contract_expired", "en", sample)
    assert "\n" not in mail.subject
    assert mail.subject == "Remote Bcc: someone@example.com has ended"
