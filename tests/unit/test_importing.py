"""Reading a street office's spreadsheet (services/importing): encodings, Excel, header names in
Chinese and English, every bad row with its line, column and reason in both languages, and
personal-data columns refused before anything is read further. Pure: no database."""

from __future__ import annotations

import io
from datetime import date

import openpyxl
import pytest

from services.importing.reading import read_table
from services.importing.reasons import REASONS, FileRefused
from services.importing.rows import availability, org_rows, volunteer_rows

TODAY = date(2026, 12, 3)  # a Thursday in Nanjing
HEADER = "编号,称呼,区,街道,社区,技能,可服务时间,每周小时上限,出行范围"
GOOD = "JD-001,王师傅,鼓楼区,江东街道,金陵名人居社区,驾驶、送餐,周一至周五 09:00-12:00,8,本街道"


def xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (f"{HEADER}\n{GOOD}\n".encode(), "utf-8"),
        (f"\ufeff{HEADER}\r\n{GOOD}\r\n".encode(), "utf-8-sig"),
        (f"{HEADER}\r\n{GOOD}\r\n".encode("gb18030"), "gb18030"),
    ],
)
def test_csv_in_utf8_with_or_without_bom_and_in_gb18030_reads_the_same(
    data: bytes, encoding: str
) -> None:
    table = read_table(data)
    assert table.encoding == encoding
    (row,), problems = volunteer_rows(table, TODAY)
    assert problems == []
    assert row.ref == "JD-001" and row.volunteer.pseudonym == "王师傅"
    assert row.volunteer.home.community == "金陵名人居社区"
    assert [str(s) for s in row.pledge.skills] == ["driving", "meal_delivery"]
    assert row.pledge.travel.value == "same_street" and row.pledge.weekly_hour_limit == 8
    # weekday ranges are laid over the next 14 days from tomorrow: ten weekdays, in Nanjing
    assert len(row.pledge.availability) == 10
    assert row.pledge.availability[0].start.isoformat() == "2026-12-04T09:00:00+08:00"


def test_an_excel_file_reads_like_its_csv_with_numbers_as_typed() -> None:
    data = xlsx(
        [
            ["ref", "Pseudonym", "District", "Skills", "Availability", "Weekly Hours"],
            ["JD-7", "李阿姨", "鼓楼区", "cooking; first aid", "Sat 14:00-17:00", 6.0],
            [None, None, None, None, None, None],
            [1002, "赵大姐", "鼓楼区", "烹饪", "2026-12-20 09:00-11:00", 4],
        ]
    )
    table = read_table(data)
    assert table.encoding == "xlsx"
    rows, problems = volunteer_rows(table, TODAY)
    assert problems == []
    assert [(r.line, r.ref, r.pledge.weekly_hour_limit) for r in rows] == [
        (2, "JD-7", 6),
        (4, "1002", 4),
    ]
    assert [str(s) for s in rows[0].pledge.skills] == ["cooking", "first_aid"]


def test_header_names_in_chinese_and_english_and_org_kinds_by_their_chinese_names() -> None:
    table = read_table(
        "名称,Kind,DISTRICT, 街道 \n江东街道慈善基金会,基金会,鼓楼区,江东街道\n"
        "金陵名人居社区,community,鼓楼区,江东街道\n中央门街道,街道办,鼓楼区,\n".encode()
    )
    rows, problems = org_rows(table)
    assert problems == []
    assert [(r.registration.kind.value, r.registration.street) for r in rows] == [
        ("foundation", "江东街道"),
        ("community", "江东街道"),
        ("street_office", None),
    ]


def test_every_bad_row_is_reported_with_line_column_and_reason_in_both_languages() -> None:
    # Given a file with one good row and several bad ones (line numbers as the sheet shows)
    data = "\n".join(
        [
            HEADER,
            GOOD,
            "JD-002,,鼓楼区,,,飞行,周八 09:00-12:00,99,月球",
            "JD-003,李阿姨,鼓楼区,,,烹饪,每天 09:00-10:00,abc,",
            "JD-001,重复,鼓楼区,,,驾驶,周六 09:00-10:00,,",
            "JD-004,赵大姐,鼓楼区,,,驾驶,周一 09:00-12:00；周一 11:00-13:00,,",
        ]
    ).encode("gb18030")
    rows, problems = volunteer_rows(read_table(data), TODAY)
    assert [r.ref for r in rows] == ["JD-001"]
    found = {(p.line, p.column): p for p in problems}
    assert set(found) == {
        (3, "称呼"),
        (3, "技能"),
        (3, "可服务时间"),
        (3, "每周小时上限"),
        (3, "出行范围"),
        (4, "每周小时上限"),
        (5, "编号"),
        (6, "可服务时间"),
    }
    assert found[(3, "称呼")].reason("zh-CN") == "必填，不能为空"
    assert found[(3, "称呼")].reason("en") == "required: must not be empty"
    assert "飞行" in found[(3, "技能")].reason("zh-CN")
    assert found[(3, "每周小时上限")].reason("en") == "must be between 1 and 60"
    assert found[(5, "编号")].reason("zh-CN") == "与第 2 行重复（同一编号在文件中只能出现一次）"
    assert found[(5, "编号")].reason("en") == "repeats line 2 (each ref may appear once in a file)"
    assert found[(6, "可服务时间")].reason("en") == "availability windows overlap"


def test_personal_data_columns_refuse_the_whole_file_and_personal_data_in_cells_the_row() -> None:
    for header in ("手机号", "身份证号码", "家庭住址", "银行卡号", "Phone", "E-mail"):
        with pytest.raises(FileRefused) as refused:
            read_table(f"{HEADER},{header}\n{GOOD},x\n".encode())  # the table reads …
            volunteer_rows(read_table(f"{HEADER},{header}\n{GOOD},x\n".encode()), TODAY)
        (problem,) = refused.value.problems
        assert (problem.line, problem.column, problem.key) == (1, header, "column.personal")
        assert "个人信息" in problem.reason("zh-CN") and "personal data" in problem.reason("en")
    rows, problems = volunteer_rows(
        read_table(f"{HEADER}\nJD-9,王 13812345678,鼓楼区,,,驾驶,周六 09:00-10:00,,\n".encode()),
        TODAY,
    )
    assert rows == []
    assert [(p.column, p.reason("zh-CN")) for p in problems] == [
        ("称呼", "含有个人信息（手机号码），交换平台不保存这类信息")
    ]


def test_unreadable_files_are_refused_with_a_reason() -> None:
    cases = {
        b"": "file.empty",
        b"\xd0\xcf\x11\xe0 old excel": "file.xls",
        b"PK\x03\x04 not really a zip": "file.xlsx",
        "编号,称呼\n".encode("utf-16"): "file.encoding",
        "编号,别名\n1,2\n".encode(): "column.unknown",
    }
    for data, key in cases.items():
        with pytest.raises(FileRefused) as refused:
            volunteer_rows(read_table(data), TODAY)
        assert refused.value.problems[0].key == key


def test_availability_formats() -> None:
    assert availability("每天 18:00-20:00", TODAY)[0] == {
        "start": "2026-12-04T18:00:00+08:00",
        "end": "2026-12-04T20:00:00+08:00",
    }
    assert len(availability("Sat-Sun 09:00-11:00", TODAY)) == 4
    assert len(availability("周末 9:00～11:00，工作日 14:00至17:00", TODAY)) == 14
    assert availability("2026年12月20日 09:00-11:00", TODAY)[0]["start"].startswith("2026-12-20")


def test_every_reason_has_both_languages() -> None:
    assert all(zh and en and zh != en for zh, en in REASONS.values())


def test_a_reason_never_quotes_personal_data_typed_into_the_wrong_column() -> None:
    data = f"{HEADER}\nJD-5,王师傅,鼓楼区,,,驾驶,周一 13812345678,,\n".encode()
    (problem,) = volunteer_rows(read_table(data), TODAY)[1]
    assert problem.column == "可服务时间" and "13812345678" not in problem.reason("zh-CN")
