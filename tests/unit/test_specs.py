"""Validation of what clients post: every rule refuses the bad case and accepts the good one."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.bodies import NeedSpec, PledgeSpec
from schemas.common import CONTROL_CHARS, INVISIBLE_CHARS
from schemas.specs import DonationSpec, FundSpec
from tests import factories as f

pytestmark = pytest.mark.unit


def fields_of(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_a_valid_volunteer_need_keeps_its_chinese_text() -> None:
    need = NeedSpec.model_validate(f.volunteer_need())
    assert need.title == "银发助餐：周六午餐送餐上门"
    assert need.place.community == "金陵名人居"


def test_the_control_character_scan_is_exactly_unicode_category_cc() -> None:
    cc = [c for c in map(chr, range(0x110000)) if unicodedata.category(c) == "Cc"]
    assert [c for c in map(chr, range(0x110000)) if CONTROL_CHARS.search(c)] == cc


@pytest.mark.parametrize("bad", ["\x07", "\x7f", "\x85", "a\x00b"])
def test_a_name_with_a_control_character_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(f.volunteer_need(title=f"银发{bad}助餐"))
    assert fields_of(exc.value) == {"title"}


def test_the_invisible_character_scan_covers_every_format_surrogate_and_private_character() -> None:
    """Every Cf, Cs and Co code point is refused in names; no visible character is."""
    for c in map(chr, range(0x110000)):
        category = unicodedata.category(c)
        if category in ("Cf", "Cs", "Co"):
            assert INVISIBLE_CHARS.search(c), f"U+{ord(c):04X} ({category}) is let through"
        elif category[0] in "LNPSZM":
            assert not INVISIBLE_CHARS.search(c), f"U+{ord(c):04X} ({category}) is refused"


@pytest.mark.parametrize(
    "look_alike",
    [
        "鼓楼区\u200b",
        "鼓\u200d楼区",
        "\ufeff鼓楼区",
        "鼓楼\u202e区",
        "鼓楼区\u00ad",
        "\ue000鼓楼区",
    ],
)
def test_a_place_that_only_looks_like_another_is_refused(look_alike: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(f.volunteer_need(place={"district": look_alike}))
    assert fields_of(exc.value) == {"place.district"}


@pytest.mark.parametrize("bad", ["电话\u0000123", "\ud800", "a\udfffb", "看\u202e这里", "\x1b[31m"])
def test_free_text_that_cannot_be_stored_or_shown_faithfully_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(f.volunteer_need(description=bad))
    assert fields_of(exc.value) == {"description"}


def test_free_text_keeps_line_breaks_tabs_and_emoji() -> None:
    text = "第一行\n第二行\t缩进 👩\u200d🍳"
    assert NeedSpec.model_validate(f.volunteer_need(description=text)).description == text


@pytest.mark.parametrize(
    "when", ["9999-12-31T23:00:00-08:00", "0001-01-01T00:00:00+08:00", "2100-01-01T00:00:00Z"]
)
def test_dates_outside_the_sane_window_are_refused(when: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(f.money_need(deadline=when))
    assert fields_of(exc.value) == {"deadline"}
    with pytest.raises(ValidationError) as exc:
        PledgeSpec.model_validate(
            f.pledge(availability=[{"start": "2026-12-05T10:00:00+08:00", "end": when}])
        )
    assert any(field.startswith("availability") for field in fields_of(exc.value))


def test_goods_whose_cost_overflows_the_largest_amount_are_refused() -> None:
    body = f.money_need(
        kind="goods",
        quantity=1_000_000,
        unit="箱",
        unit_cost={"amount_minor": 10_000_000_000_000, "currency": "CNY"},
    )
    del body["amount"]
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(body)
    assert "quantity × unit_cost" in str(exc.value)


def test_names_are_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Café 银发")
    need = NeedSpec.model_validate(f.volunteer_need(title=decomposed))
    assert need.title == unicodedata.normalize("NFC", "Café 银发")
    assert need.title != decomposed


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"volunteers_needed": 0}, "volunteers_needed"),
        ({"people_served": -1}, "people_served"),
        ({"category": "Astrology!"}, "category"),  # not a code; unknown codes: the gateway
        ({"required_skills": ["Juggling"]}, "required_skills.0"),
        ({"title": ""}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"deadline": "2026-12-05T10:00:00"}, "deadline"),  # naive: no time zone
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_need_fields_are_named(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(f.volunteer_need(**override))
    assert field in fields_of(exc.value)


def test_a_shift_must_end_after_it_starts() -> None:
    body = f.volunteer_need(
        shift={"start": "2026-12-05T12:00:00+08:00", "end": "2026-12-05T12:00:00+08:00"}
    )
    with pytest.raises(ValidationError) as exc:
        NeedSpec.model_validate(body)
    assert "shift" in fields_of(exc.value)
    assert "end must be after start" in str(exc.value)


def test_a_volunteer_need_requires_its_shift_and_refuses_money() -> None:
    body = f.volunteer_need()
    del body["shift"]
    with pytest.raises(ValidationError, match="requires shift"):
        NeedSpec.model_validate(body)
    with pytest.raises(ValidationError, match="must not carry amount"):
        NeedSpec.model_validate(f.volunteer_need(amount={"amount_minor": 1, "currency": "CNY"}))


@pytest.mark.parametrize("amount", [0, -5, 10**13 + 1])
def test_money_must_be_positive_and_bounded(amount: int) -> None:
    with pytest.raises(ValidationError) as exc:
        DonationSpec.model_validate(f.donation(amount=amount))
    assert "amount.amount_minor" in fields_of(exc.value)


def test_money_is_never_a_float() -> None:
    with pytest.raises(ValidationError):
        DonationSpec.model_validate(f.donation(amount=12.5))  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["cny", "CN", "RMB1", ""])
def test_currency_is_an_iso_code(currency: str) -> None:
    with pytest.raises(ValidationError):
        DonationSpec.model_validate(
            {"donor": "匿名", "amount": {"amount_minor": 100, "currency": currency}}
        )


def test_goods_with_a_unit_cost_are_counted_in_money() -> None:
    body = f.money_need(
        kind="goods",
        quantity=20,
        unit="套",
        category="emergency",
        unit_cost={"amount_minor": 15_000, "currency": "CNY"},
    )
    del body["amount"]
    need = NeedSpec.model_validate(body)
    assert need.money_wanted is not None and need.money_wanted.amount_minor == 300_000


def test_fund_restrictions_are_checked() -> None:
    with pytest.raises(ValidationError, match="valid_until must be after valid_from"):
        FundSpec.model_validate(
            f.fund(valid_from="2026-12-01T00:00:00Z", valid_until="2026-11-01T00:00:00Z")
        )
    with pytest.raises(ValidationError, match="categories must not repeat"):
        FundSpec.model_validate(f.fund(categories=["elderly_meals", "elderly_meals"]))
    with pytest.raises(ValidationError, match="cap_per_need must be in the fund's currency"):
        FundSpec.model_validate(f.fund(cap_per_need={"amount_minor": 1, "currency": "USD"}))


def test_a_fund_allows_only_what_its_earmarks_allow() -> None:
    fund = FundSpec.model_validate(f.fund(valid_until="2026-12-31T16:00:00Z"))
    assert fund.allows(NeedSpec.model_validate(f.money_need()).category, "鼓楼区", f.T0)
    assert not fund.allows(
        NeedSpec.model_validate(f.money_need(category="tutoring")).category, "鼓楼区", f.T0
    )
    assert not fund.allows(NeedSpec.model_validate(f.money_need()).category, "江宁区", f.T0)


def test_pledge_windows_must_not_overlap() -> None:
    windows = [
        {"start": "2026-12-05T09:00:00+08:00", "end": "2026-12-05T12:00:00+08:00"},
        {"start": "2026-12-05T11:00:00+08:00", "end": "2026-12-05T13:00:00+08:00"},
    ]
    with pytest.raises(ValidationError, match="must not overlap"):
        PledgeSpec.model_validate(f.pledge(availability=windows))
    touching = [
        windows[0],
        {"start": "2026-12-05T12:00:00+08:00", "end": "2026-12-05T13:00:00+08:00"},
    ]
    assert len(PledgeSpec.model_validate(f.pledge(availability=touching)).availability) == 2


def test_a_pledge_has_no_place_for_contact_details() -> None:
    with pytest.raises(ValidationError) as exc:
        PledgeSpec.model_validate(f.pledge(phone="13800000000"))
    assert "phone" in fields_of(exc.value)
