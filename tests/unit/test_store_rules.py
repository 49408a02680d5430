"""Store rules that need no database: the order and contract state machines, card checks (STO-5), term
arithmetic, the data-plan recommender (CON-4), which services fit a car, and money in each currency."""

from __future__ import annotations

import datetime as dt

import pytest

from carlink.catalog.countries import STORE_COUNTRIES, CardBrand
from carlink.catalog.models import Service
from carlink.catalog.money import format_money, minor_digits, to_decimal
from carlink.catalog.rules import fits, recommend_plan
from carlink.errors import CarlinkError, Conflict
from carlink.store.cards import check_accepted, check_expiry, clean_number, detect_brand, luhn_ok
from carlink.store.rules import (
    CONTRACT_TRANSITIONS,
    ENTITLED,
    ORDER_TRANSITIONS,
    ContractState,
    OrderState,
    contract_may,
    order_may,
    require_contract_move,
)
from carlink.store.service import add_months

# --- the order and contract state machines (STYLE: a test of each transition and each forbidden one) -------

ORD = OrderState
CON = ContractState

# What the store may do with an order, written out here on its own so a change of the table shows up.
ORDER_ALLOWED = {
    (ORD.PLACED, ORD.REQUIRES_ACTION),  # the card issuer asks for a one-time code
    (ORD.PLACED, ORD.CONFIRMED),  # paid or free, contracts concluded
    (ORD.PLACED, ORD.FAILED),  # declined or abandoned
    (ORD.PLACED, ORD.REFUNDED),  # charged but could not be concluded
    (ORD.REQUIRES_ACTION, ORD.CONFIRMED),  # the right code
    (ORD.REQUIRES_ACTION, ORD.FAILED),  # the wrong code, or never answered
    (ORD.REQUIRES_ACTION, ORD.REFUNDED),
    # Given up as failed (abandoned), then the charge turns up after all: the money goes back (issue 4: never
    # a charge without a contract). contracts.refund_order makes exactly this move.
    (ORD.FAILED, ORD.REFUNDED),
}
CONTRACT_ALLOWED = {
    (CON.ACTIVE, CON.CANCELLED),  # STO-11
    (CON.ACTIVE, CON.WITHDRAWN),  # STO-10
    (CON.ACTIVE, CON.EXPIRED),
    (CON.CANCELLED, CON.WITHDRAWN),  # cancelled within the 14 days, then withdrawn
    (CON.CANCELLED, CON.EXPIRED),  # runs to the end of the paid period
}
ORDER_PAIRS = [(a, b) for a in OrderState for b in OrderState]
CONTRACT_PAIRS = [(a, b) for a in ContractState for b in ContractState]


def _pair_id(pair: object) -> str:
    return str(pair.value) if isinstance(pair, OrderState | ContractState) else str(pair)


@pytest.mark.parametrize(("current", "target"), [p for p in ORDER_PAIRS if p in ORDER_ALLOWED], ids=_pair_id)
def test_an_order_may_make_this_move(current: OrderState, target: OrderState) -> None:
    assert order_may(current.value, target)


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ORDER_PAIRS if p not in ORDER_ALLOWED], ids=_pair_id
)
def test_an_order_may_not_make_this_move(current: OrderState, target: OrderState) -> None:
    assert not order_may(current.value, target)


@pytest.mark.parametrize(
    ("current", "target"), [p for p in CONTRACT_PAIRS if p in CONTRACT_ALLOWED], ids=_pair_id
)
def test_a_contract_may_make_this_move(current: ContractState, target: ContractState) -> None:
    assert contract_may(current.value, target)
    require_contract_move(current.value, target)  # no error


@pytest.mark.parametrize(
    ("current", "target"), [p for p in CONTRACT_PAIRS if p not in CONTRACT_ALLOWED], ids=_pair_id
)
def test_a_contract_may_not_make_this_move(current: ContractState, target: ContractState) -> None:
    assert not contract_may(current.value, target)
    with pytest.raises(Conflict) as refused:
        require_contract_move(current.value, target)
    assert (refused.value.status, refused.value.code) == (409, "contract_state")


def test_every_state_has_its_row_in_the_transition_tables() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderState)
    assert set(CONTRACT_TRANSITIONS) == set(ContractState)


def test_confirmed_and_refunded_orders_and_withdrawn_and_expired_contracts_are_final() -> None:
    assert not ORDER_TRANSITIONS[ORD.CONFIRMED] and not ORDER_TRANSITIONS[ORD.REFUNDED]
    assert not CONTRACT_TRANSITIONS[CON.WITHDRAWN] and not CONTRACT_TRANSITIONS[CON.EXPIRED]


def test_active_and_cancelled_contracts_give_the_car_its_service() -> None:
    assert {CON.ACTIVE, CON.CANCELLED} == ENTITLED


def test_an_unknown_state_is_an_error_not_a_silent_refusal() -> None:
    with pytest.raises(ValueError):
        order_may("paid", ORD.CONFIRMED)
    with pytest.raises(ValueError):
        contract_may("paused", CON.ACTIVE)


# --- card numbers: Luhn and brands (STO-5) -----------------------------------------------------------------

# The sandbox gateway's test cards (store/payments.py) and the brand each must be recognised as.
TEST_CARDS = {
    "4242 4242 4242 4242": CardBrand.VISA,
    "4000 0000 0000 3220": CardBrand.VISA,
    "4000 0000 0000 0002": CardBrand.VISA,
    "4000 0000 0000 9995": CardBrand.VISA,
    "5555 5555 5555 4444": CardBrand.MASTERCARD,
    "3530 1113 3330 0000": CardBrand.JCB,
    "3622 7206 2716 67": CardBrand.DINERS,
    "3782 8224 6310 005": CardBrand.AMEX,
}


@pytest.mark.parametrize(("number", "brand"), TEST_CARDS.items())
def test_each_sandbox_test_card_passes_luhn_and_shows_its_brand(number: str, brand: CardBrand) -> None:
    digits = clean_number(number)
    assert digits == number.replace(" ", "")
    assert luhn_ok(digits)
    assert detect_brand(digits) is brand


@pytest.mark.parametrize(
    "number", ["4242424242424241", "5555555555554445", "79927398710", "1234567812345678"]
)
def test_a_number_with_a_wrong_check_digit_fails_luhn(number: str) -> None:
    assert not luhn_ok(number)


def test_luhn_accepts_the_textbook_example() -> None:
    assert luhn_ok("79927398713")


@pytest.mark.parametrize(
    "raw",
    ["4242 4242 4242 4241", "4242-4242-4242-4240", "4242 4242 4242 424x", "", "12345678901", "4" * 20],
)
def test_a_malformed_or_invalid_card_number_is_refused_with_one_code(raw: str) -> None:
    with pytest.raises(CarlinkError) as refused:
        clean_number(raw)
    assert (refused.value.status, refused.value.code) == (422, "card_number_invalid")


def test_spaces_and_dashes_in_a_card_number_are_ignored() -> None:
    assert clean_number("4242-4242 4242-4242") == "4242424242424242"


def _number(prefix: str, length: int = 16) -> str:
    return prefix + "0" * (length - len(prefix))


@pytest.mark.parametrize(
    ("prefix", "brand"),
    [
        ("4", CardBrand.VISA),
        ("49", CardBrand.VISA),
        ("50", None),
        ("51", CardBrand.MASTERCARD),
        ("53", CardBrand.MASTERCARD),
        ("55", CardBrand.MASTERCARD),
        ("56", None),
        ("2220", None),
        ("2221", CardBrand.MASTERCARD),
        ("2500", CardBrand.MASTERCARD),
        ("2720", CardBrand.MASTERCARD),
        ("2721", None),
        ("3527", None),
        ("3528", CardBrand.JCB),
        ("3560", CardBrand.JCB),
        ("3589", CardBrand.JCB),
        ("3590", None),
        ("36", CardBrand.DINERS),
        ("38", CardBrand.DINERS),
        ("39", CardBrand.DINERS),
        ("300", CardBrand.DINERS),
        ("305", CardBrand.DINERS),
        ("306", None),
        ("34", CardBrand.AMEX),
        ("37", CardBrand.AMEX),
        ("6011", None),  # Discover: not a brand of ours
        ("1", None),
    ],
)
def test_the_brand_comes_from_the_issuer_prefix(prefix: str, brand: CardBrand | None) -> None:
    assert detect_brand(_number(prefix)) is brand


# --- expiry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("today", [dt.date(2025, 6, 15), dt.date(2025, 1, 1), dt.date(2024, 12, 31)], ids=str)
def test_a_card_is_good_to_the_end_of_its_expiry_month(today: dt.date) -> None:
    check_expiry(today.month, today.year, today)
    check_expiry(12, today.year + 5, today)


@pytest.mark.parametrize(
    ("today", "month", "year"),
    [(dt.date(2025, 6, 1), 5, 2025), (dt.date(2025, 1, 31), 12, 2024), (dt.date(2025, 6, 1), 6, 2024)],
    ids=str,
)
def test_a_card_from_last_month_has_expired(today: dt.date, month: int, year: int) -> None:
    with pytest.raises(CarlinkError) as refused:
        check_expiry(month, year, today)
    assert (refused.value.status, refused.value.code) == (422, "card_expired")


@pytest.mark.parametrize(("month", "year"), [(0, 2030), (13, 2030), (-1, 2030), (6, 1999), (6, 2101)])
def test_an_expiry_that_is_no_month_is_refused(month: int, year: int) -> None:
    with pytest.raises(CarlinkError) as refused:
        check_expiry(month, year, dt.date(2025, 6, 1))
    assert (refused.value.status, refused.value.code) == (422, "card_expiry_invalid")


# --- brands accepted per country ---------------------------------------------------------------------------


def test_jcb_is_accepted_in_japan() -> None:
    assert check_accepted(CardBrand.JCB, STORE_COUNTRIES["JP"].brands, "JP") is CardBrand.JCB


@pytest.mark.parametrize("country", ["DE", "AT", "NL", "CH", "GB", "US"])
def test_jcb_is_refused_outside_japan(country: str) -> None:
    with pytest.raises(CarlinkError) as refused:
        check_accepted(CardBrand.JCB, STORE_COUNTRIES[country].brands, country)
    assert (refused.value.status, refused.value.code) == (422, "card_brand_not_accepted")
    assert "VISA" in refused.value.message  # the person hears what is accepted instead


@pytest.mark.parametrize("country", sorted(STORE_COUNTRIES))
def test_visa_and_mastercard_are_accepted_everywhere(country: str) -> None:
    brands = STORE_COUNTRIES[country].brands
    assert check_accepted(CardBrand.VISA, brands, country) is CardBrand.VISA
    assert check_accepted(CardBrand.MASTERCARD, brands, country) is CardBrand.MASTERCARD


@pytest.mark.parametrize("country", sorted(STORE_COUNTRIES))
def test_american_express_is_recognised_but_accepted_nowhere(country: str) -> None:
    assert detect_brand("378282246310005") is CardBrand.AMEX
    with pytest.raises(CarlinkError) as refused:
        check_accepted(CardBrand.AMEX, STORE_COUNTRIES[country].brands, country)
    assert refused.value.code == "card_brand_not_accepted"


def test_an_unknown_brand_is_not_accepted() -> None:
    with pytest.raises(CarlinkError) as refused:
        check_accepted(None, STORE_COUNTRIES["JP"].brands, "JP")
    assert refused.value.code == "card_brand_not_accepted"


def test_diners_is_accepted_in_japan_and_the_united_states_but_not_in_germany() -> None:
    assert CardBrand.DINERS in STORE_COUNTRIES["JP"].brands
    assert CardBrand.DINERS in STORE_COUNTRIES["US"].brands
    assert CardBrand.DINERS not in STORE_COUNTRIES["DE"].brands


# --- terms: the same day months later ----------------------------------------------------------------------

UTC = dt.UTC


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (dt.datetime(2025, 1, 31, 9, 30, tzinfo=UTC), 1, dt.datetime(2025, 2, 28, 9, 30, tzinfo=UTC)),
        (dt.datetime(2024, 1, 31, 9, 30, tzinfo=UTC), 1, dt.datetime(2024, 2, 29, 9, 30, tzinfo=UTC)),
        (dt.datetime(2025, 3, 31, tzinfo=UTC), 1, dt.datetime(2025, 4, 30, tzinfo=UTC)),
        (dt.datetime(2025, 12, 15, tzinfo=UTC), 1, dt.datetime(2026, 1, 15, tzinfo=UTC)),
        (dt.datetime(2025, 12, 31, tzinfo=UTC), 2, dt.datetime(2026, 2, 28, tzinfo=UTC)),
        (dt.datetime(2025, 5, 10, tzinfo=UTC), 12, dt.datetime(2026, 5, 10, tzinfo=UTC)),
        (dt.datetime(2024, 2, 29, tzinfo=UTC), 12, dt.datetime(2025, 2, 28, tzinfo=UTC)),
        (dt.datetime(2025, 5, 10, tzinfo=UTC), 36, dt.datetime(2028, 5, 10, tzinfo=UTC)),
        (dt.datetime(2025, 5, 10, tzinfo=UTC), 0, dt.datetime(2025, 5, 10, tzinfo=UTC)),
    ],
    ids=str,
)
def test_a_term_ends_on_the_same_day_or_the_last_day_of_a_shorter_month(
    start: dt.datetime, months: int, end: dt.datetime
) -> None:
    assert add_months(start, months) == end
    assert add_months(start, months).tzinfo is UTC


# --- the data-plan recommender (CON-4) ---------------------------------------------------------------------


@pytest.mark.parametrize("km", [8_000, 10_000, 12_000])
def test_about_ten_thousand_km_a_year_needs_half_to_one_gb_a_month(km: int) -> None:
    advice = recommend_plan(km, streaming=False)
    assert (advice.low_mb, advice.high_mb) == (512, 1024)
    assert advice.wanted_mb == 1024


@pytest.mark.parametrize("km", [25_000, 30_000, 40_000, 50_000])
@pytest.mark.parametrize("streaming", [False, True])
def test_twenty_five_to_fifty_thousand_km_need_two_gb(km: int, streaming: bool) -> None:
    advice = recommend_plan(km, streaming=streaming)
    assert advice.wanted_mb == 2048
    assert advice.low_mb <= 2048


@pytest.mark.parametrize("km", [50_001, 60_000, 120_000])
def test_over_fifty_thousand_km_with_streaming_need_about_five_gb(km: int) -> None:
    advice = recommend_plan(km, streaming=True)
    assert 4096 <= advice.low_mb <= advice.high_mb
    assert advice.wanted_mb == 5120


def test_over_fifty_thousand_km_without_streaming_stay_at_two_gb() -> None:
    assert recommend_plan(80_000, streaming=False).wanted_mb == 2048


def test_more_driving_or_streaming_never_recommends_less() -> None:
    for streaming in (False, True):
        wanted = [recommend_plan(km, streaming).wanted_mb for km in range(0, 100_001, 500)]
        assert wanted == sorted(wanted)
    for km in range(0, 100_001, 500):
        assert recommend_plan(km, True).wanted_mb >= recommend_plan(km, False).wanted_mb


def test_a_negative_mileage_is_refused() -> None:
    with pytest.raises(ValueError):
        recommend_plan(-1, streaming=False)


# --- which services fit a car -------------------------------------------------------------------------------


def _service(model_keys: list[str] | None = None, engines: list[str] | None = None) -> Service:
    return Service(code="x", kind="service", model_keys=model_keys or [], engines=engines or [])


@pytest.mark.parametrize(("engine", "fitting"), [("BEV", True), ("PHEV", True), ("COMBUSTION", False)])
def test_a_charging_service_fits_only_electric_and_hybrid_cars(engine: str, fitting: bool) -> None:
    assert fits(_service(engines=["BEV", "PHEV"]), "taycan-1", engine) is fitting


def test_a_service_naming_no_model_or_engine_fits_every_car() -> None:
    assert fits(_service(), "911-7", "COMBUSTION")
    assert fits(_service(), "taycan-1", "BEV")


def test_a_service_for_named_models_fits_only_those() -> None:
    service = _service(model_keys=["taycan-1"], engines=["BEV"])
    assert fits(service, "taycan-1", "BEV")
    assert not fits(service, "panamera-2", "BEV")
    assert not fits(service, "taycan-1", "PHEV")


# --- money -------------------------------------------------------------------------------------------------


def test_the_yen_has_no_minor_unit() -> None:
    assert minor_digits("JPY") == 0
    assert to_decimal(13200, "JPY") == 13200
    assert format_money(13200, "JPY", "ja") == "￥13,200"


@pytest.mark.parametrize("currency", ["EUR", "GBP", "USD", "CHF"])
def test_euro_pound_dollar_and_franc_have_two_minor_digits(currency: str) -> None:
    assert minor_digits(currency) == 2
    assert str(to_decimal(9900, currency)) == "99.00"


@pytest.mark.parametrize(
    ("amount", "currency", "language", "text"),
    [
        (9900, "EUR", "de", "99,00\xa0€"),
        (990, "EUR", "de", "9,90\xa0€"),
        (124900, "EUR", "de", "1.249,00\xa0€"),
        (9900, "EUR", "en", "€99.00"),
        (899, "GBP", "en", "£8.99"),
        (0, "EUR", "de", "0,00\xa0€"),
    ],
)
def test_money_is_written_the_way_the_language_writes_it(
    amount: int, currency: str, language: str, text: str
) -> None:
    assert format_money(amount, currency, language) == text


def test_an_unsupported_language_writes_money_in_english() -> None:
    assert format_money(9900, "EUR", "fr") == format_money(9900, "EUR", "en")
