"""Bulk import of a district (issue #16, docs/import.md) on a real PostgreSQL and gateway.

The operator imports the district's organisations from a CSV; a community imports its
volunteers with their pledges from an Excel file and from a GB18030 CSV with bad rows: the dry
run reports every bad row and writes nothing, the import writes the good rows, a second run of
the same file changes nothing, a token from the sign-ins file signs the volunteer in, and a
need posted in the district is proposed to imported volunteers exactly as to volunteers
registered one by one (intake's and the matcher's own decisions, run over the outbox).
The command line does the same with the database (`exchange import`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import openpyxl
import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode
from schemas.matches import MatchProposed
from services.audit.replay.simulate import simulate
from services.cli import parser
from services.domain.intake import IntakeState, decide
from services.identity import create_operator
from services.importing.rows import ZONE, availability
from services.settings import Settings
from tests import factories as f
from tests.integration.conftest import query

pytestmark = pytest.mark.integration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ORGS = """名称,类型,区,街道
江东街道慈善基金会,基金会,鼓楼区,江东街道
金陵名人居社区,社区,鼓楼区,江东街道
辰龙广场社区,社区,鼓楼区,江东街道
江东街道社会工作服务中心,社会组织,鼓楼区,江东街道
"""
VOLUNTEERS = [
    "编号",
    "称呼",
    "区",
    "街道",
    "社区",
    "技能",
    "可服务时间",
    "每周小时上限",
    "出行范围",
]


def operator_token(dsn: str) -> str:
    async def make() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return (await create_operator(conn, "运营-王芳"))[1]
        finally:
            await conn.close()

    return asyncio.run(make())


def excel(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def proposals(dsn: str) -> list[MatchProposed]:
    """What intake and the matcher decide for every posting in the outbox, in commit order:
    the services' own pure decisions (as the auditor's replay runs them)."""

    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(
                await conn.fetch(
                    "SELECT topic, value FROM postings WHERE org_id <> 'operator' ORDER BY seq"
                )
            )
        finally:
            await conn.close()

    states: dict[str, IntakeState] = {}
    decided = []
    for row in asyncio.run(rows()):
        decided += decide(
            states.setdefault(row["topic"], IntakeState()), decode(bytes(row["value"]))
        )
    found = [decode(r.value).payload for r in simulate(decided) if r.topic == "matches.events"]
    return [p for p in found if isinstance(p, MatchProposed)]


def test_a_district_imported_from_csv_and_excel_then_proposed_to(
    client: TestClient, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = database_url
    operator = {"Authorization": f"Bearer {operator_token(dsn)}"}

    # Given the district's organisations, imported by the operator from a CSV
    r = client.post(
        "/v1/imports/orgs?dry_run=true",
        content=ORGS.encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["would_create"], r.json()["sign_ins"]) == (4, [])
    assert query(dsn, "SELECT count(*) FROM organisations") == 0
    r = client.post(
        "/v1/imports/orgs", content=ORGS.encode(), headers={**operator, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.text
    assert r.json()["created"] == 4
    tokens = {s["name"]: s["token"] for s in r.json()["sign_ins"]}
    again = client.post(
        "/v1/imports/orgs", content=ORGS.encode(), headers={**operator, "Content-Type": "text/csv"}
    )
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 4)
    # (a name that only reads like a registered one is a bad row, never a second organisation)
    lookalike = "名称,类型,区\n金陵名人居 社区,社区,鼓楼区\n".encode()
    r = client.post(
        "/v1/imports/orgs", content=lookalike, headers={**operator, "Content-Type": "text/csv"}
    )
    (similar,) = r.json()["problems"]
    assert (similar["line"], similar["column"], similar["code"]) == (2, "名称", "row.similar_org")
    assert query(dsn, "SELECT count(*) FROM organisations") == 4
    community = {"Authorization": f"Bearer {tokens['金陵名人居社区']}"}
    # (only the operator imports organisations; a foundation imports no volunteers)
    assert client.post("/v1/imports/orgs", content=b"x", headers=community).status_code == 403
    foundation = {"Authorization": f"Bearer {tokens['江东街道慈善基金会']}"}
    assert (
        client.post("/v1/imports/volunteers", content=b"x", headers=foundation).status_code == 403
    )

    # When the community dry-runs its Excel file with one bad row, nothing is written …
    book = excel(
        [
            VOLUNTEERS,
            [
                "JL-001",
                "王师傅",
                "鼓楼区",
                "江东街道",
                "金陵名人居社区",
                "驾驶、送餐",
                "每天 09:00-12:00",
                8,
                "本区",
            ],
            [
                "JL-002",
                "李阿姨",
                "鼓楼区",
                "江东街道",
                None,
                "烹饪，送餐",
                "每天 09:00-12:00",
                6,
                None,
            ],
            ["JL-003", "赵大姐", "鼓楼区", None, None, "飞行", "每天 09:00-12:00", None, None],
        ]
    )
    excel_headers = {**community, "Content-Type": XLSX}
    r = client.post(
        "/v1/imports/volunteers?dry_run=true&lang=en", content=book, headers=excel_headers
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["would_create"], report["refused"], report["encoding"]) == (2, 1, "xlsx")
    assert [(p["line"], p["column"], p["code"]) for p in report["problems"]] == [
        (4, "技能", "row.skill")
    ]
    assert report["problems"][0]["reason"].startswith("unknown skill “飞行”")
    assert query(dsn, "SELECT count(*) FROM postings WHERE org_id <> 'operator'") == 0
    # … the import writes the good rows (a registration and a pledge each) …
    r = client.post("/v1/imports/volunteers", content=book, headers=excel_headers)
    assert (r.json()["created"], r.json()["refused"]) == (2, 1), r.text
    assert query(dsn, "SELECT count(*) FROM postings WHERE org_id <> 'operator'") == 4
    # … and the second run of the same file changes nothing.
    r = client.post("/v1/imports/volunteers", content=book, headers=excel_headers)
    assert (r.json()["created"], r.json()["unchanged"], r.json()["sign_ins"]) == (0, 2, [])
    assert query(dsn, "SELECT count(*) FROM postings WHERE org_id <> 'operator'") == 4

    # A GB18030 CSV (as Excel on a Chinese Windows saves one) with bad rows, sign-ins as a file
    gb = "\r\n".join(
        [
            ",".join(VOLUNTEERS),
            "JL-101,孙老师,鼓楼区,江东街道,金陵名人居社区,送餐、辅导,"
            "周一至周日 09:00-12:00,10,本街道",
            "JL-102,周师傅 13912345678,鼓楼区,,,驾驶,每天 09:00-12:00,,",
            "JL-103,钱阿姨,,,,送餐,每天 25:00-26:00,,",
        ]
    ).encode("gb18030")
    csv_headers = {**community, "Content-Type": "text/csv"}
    r = client.post("/v1/imports/volunteers?dry_run=true", content=gb, headers=csv_headers)
    problems = [(p["line"], p["column"]) for p in r.json()["problems"]]
    assert problems == [(3, "称呼"), (4, "区"), (4, "可服务时间")], r.text
    assert "手机号码" in r.json()["problems"][0]["reason"]  # zh-CN by default
    r = client.post(
        "/v1/imports/volunteers", content=gb, headers={**csv_headers, "Accept": "text/csv"}
    )
    assert r.status_code == 200 and r.headers["x-import-created"] == "1", r.text
    assert r.content.startswith("\ufeff".encode())
    (sign_in,) = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sign_in["编号/ref"] == "JL-101"
    volunteer = {"Authorization": f"Bearer {sign_in['登录令牌/token']}"}
    today = datetime.now(ZONE).date()
    own = f.pledge(pseudonym="孙老师", availability=availability("每天 09:00-12:00", today))
    r = client.put(  # only the volunteer (or their registrar) may
        f"/v1/volunteers/{sign_in['志愿者ID/volunteer_id']}/pledge", json=own, headers=volunteer
    )
    assert r.status_code == 202, r.text
    rerun = client.post("/v1/imports/volunteers", content=gb, headers=csv_headers)
    assert (rerun.json()["created"], rerun.json()["unchanged"]) == (0, 1)

    # A file that cannot be imported at all is a 422 naming line and column; never a 500
    r = client.post(
        "/v1/imports/volunteers",
        content=",".join([*VOLUNTEERS, "手机号"]).encode(),
        headers=csv_headers,
    )
    assert r.status_code == 422 and r.json()["problems"][0]["column"] == "手机号", r.text
    r = client.post(
        "/v1/imports/volunteers",
        content=b"{}",
        headers={**community, "Content-Type": "application/json"},
    )
    assert r.status_code == 415

    # And the command line imports for the community, with a sign-ins file of mode 0600
    settings = Settings(DATABASE_URL=dsn, EXCHANGE_VAR_DIR=str(tmp_path / "var"))
    file = tmp_path / "辰龙广场.csv"
    row = "CL-1,吴师傅,鼓楼区,江东街道,辰龙广场社区,送餐,每天 09:00-12:00,,"
    file.write_bytes(f"{','.join(VOLUNTEERS)}\n{row}\n".encode("gb18030"))
    out = tmp_path / "sign-ins.csv"
    args = parser().parse_args(
        ["import", "volunteers", str(file), "--org", "金陵名人居社区", "--sign-ins", str(out)]
    )
    assert args.func(settings, args) == 0
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert "created: 1" in capsys.readouterr().out
    assert (
        args.func(
            settings,
            parser().parse_args(
                [
                    "import",
                    "volunteers",
                    str(file),
                    "--org",
                    "金陵名人居社区",
                    "--sign-ins",
                    str(tmp_path / "2.csv"),
                ]
            ),
        )
        == 0
    )
    assert "unchanged: 1" in capsys.readouterr().out

    # Then a need posted in the district is proposed to the imported volunteers
    day = datetime.now(ZONE).date() + timedelta(days=2)
    start = datetime.combine(day, datetime.min.time(), tzinfo=ZONE) + timedelta(hours=10)
    need = f.volunteer_need(
        shift={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        deadline=(start + timedelta(hours=2)).isoformat(),
        volunteers_needed=3,
    )
    r = client.post("/v1/needs", json=need, headers=community)
    assert r.status_code == 202, r.text
    imported = {row[0] for row in asyncio.run(_imported(dsn))}
    assert uuid.UUID(sign_in["志愿者ID/volunteer_id"]) in imported and len(imported) == 4
    proposed = {
        p.volunteer_id for p in proposals(dsn) if p.need_id == uuid.UUID(r.json()["need_id"])
    }
    assert len(proposed) == 3 and proposed <= imported

    # And a community uses the upload page: the check shows the bad row, the import the sign-ins
    pre = client.get("/").cookies.get("cx_pre")
    token = tokens["辰龙广场社区"]
    assert client.post("/signin", data={"pre": pre, "token": token}).status_code == 200
    page = client.get("/imports")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None, page.text
    upload = gb.replace(b"JL-", b"CL-")
    r = client.post(
        "/imports/check",
        data={"csrf": csrf[1]},
        files={"file": ("辰龙广场.csv", upload, "text/csv")},
    )
    assert r.status_code == 200 and "手机号码" in r.text and "导入 1 位志愿者" in r.text, r.text
    data = re.search(r'name="data" value="([^"]+)"', r.text)
    assert data is not None
    r = client.post("/imports/run", data={"csrf": csrf[1], "data": data[1]})
    assert r.status_code == 200 and "CL-101" in r.text and "data:text/csv" in r.text, r.text
    assert r.headers["cache-control"] == "no-store"


async def _imported(dsn: str) -> list[tuple[uuid.UUID]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            (r["volunteer_id"],)
            for r in await conn.fetch("SELECT volunteer_id FROM volunteer_imports")
        ]
    finally:
        await conn.close()
