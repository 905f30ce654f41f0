"""Personal data is found in the forms people really type, and ordinary text passes."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.personal_data import find_personal_data, luhn_is_valid, resident_id_is_valid

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("独居老人王某，电话13812345678", "mobile"),
        ("１３８１２３４５６７８", "mobile"),  # full-width digits
        ("请联系 138 1234 5678", "mobile"),
        ("请联系138-1234-5678", "mobile"),
        ("+86 138-1234-5678", "mobile"),
        ("008613812345678", "mobile"),
        ("王阿姨 320102198001010016", "resident_id"),  # a valid check digit, no label
        ("32010619751231002x 是他的", "resident_id"),  # lower-case x
        ("身份证号：32010219800101001X", "resident_id"),  # labelled, check digit wrong
        ("身份证 320102800101001", "number"),  # labelled old 15-digit form
        ("座机 025-84561234", "landline"),
        ("(025) 8456 1234", "landline"),
        ("0512-6789123", "landline"),
        ("电话：8456 1234", "number"),  # labelled, no area code
        ("联系 zhang.san@example.com", "email"),
        ("邮箱 ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ", "email"),
        ("6222 0202 0000 1234 562", "bank_card"),  # Luhn-valid, no label
        ("卡号 6222-0202-0000-1234-5678", "number"),  # labelled, Luhn-invalid
    ],
)
def test_personal_data_is_found_in_the_forms_people_type(text: str, kind: str) -> None:
    found = find_personal_data(text)
    assert found is not None and found.kind == kind, (text, found)


@pytest.mark.parametrize(
    "text",
    [
        "银发助餐：周六午餐送餐上门",
        "服务40位老人，每份餐补贴12元",
        "2026年12月5日 10:00-12:00 送餐",
        "2026.12.05 至 2026.12.31",
        "预算 3000 元，面积120平方米，共 1,000,000 份",
        "第3期 四点半课堂 15人",
        "编号 A-1234567",  # seven digits but no label and no phone shape
        "a76efe6c-2be8-4105-88b7-7e87dda1819f",  # a UUID: its digits joined by dashes
        "need-6f1c0e2a-0255-4845-6123-908812345678",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "",
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert find_personal_data(text) is None


def test_the_check_digits_are_computed_not_guessed() -> None:
    assert resident_id_is_valid("320102198001010016")
    assert not resident_id_is_valid("320102198001010017")
    assert not resident_id_is_valid("320102198013010016"[:17] + "6")  # month 13
    assert luhn_is_valid("6222020200001234562")
    assert not luhn_is_valid("6222020200001234563")


@given(st.uuids())
def test_no_uuid_reads_as_personal_data(key: uuid.UUID) -> None:
    """Idempotency keys are mostly UUIDs: their digits, joined by dashes, once read as phone
    and bank card numbers and refused one write in a hundred."""
    assert find_personal_data(str(key)) is None
    assert find_personal_data(f"need-{key}") is None
