"""Kill -9 every process of the exchange mid-flight, start again: nothing acknowledged is lost,
nothing is applied twice, and the exchange carries on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories as f
from tests.e2e.harness import Exchange, wait_for

pytestmark = pytest.mark.e2e


def post_load(http: httpx.Client, tokens: dict[str, str], rounds: int) -> dict[str, list[str]]:
    """Post funds, donations, volunteers, pledges and needs; return the ids of every
    acknowledged posting."""
    acked: dict[str, list[str]] = {
        "postings": [],
        "needs": [],
        "funds": [],
        "pledges": [],
        "donations": [],
    }

    def post(
        path: str, body: dict[str, Any], kind: str, id_field: str, token: str, method: str = "POST"
    ) -> str:
        r = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
        acked["postings"].append(r.json()["posting_id"])
        acked[kind].append(r.json()[id_field])
        return str(r.json()[id_field])

    foundation, community = tokens["foundation"], tokens["community"]
    for i in range(rounds):
        fund_id = post("/v1/funds", f.fund(name=f"基金{i}"), "funds", "fund_id", foundation)
        post(
            f"/v1/funds/{fund_id}/donations",
            f.donation(50_000),
            "donations",
            "donation_id",
            foundation,
        )
        r = http.post(
            "/v1/volunteers",
            headers={"Authorization": f"Bearer {community}"},
            json={"pseudonym": f"志愿者{i}", "home": {"district": "鼓楼区"}},
        )
        assert r.status_code == 202, r.text
        acked["postings"].append(r.json()["posting_id"])
        volunteer = r.json()["volunteer_id"]
        post(
            f"/v1/volunteers/{volunteer}/pledge",
            f.pledge(pseudonym=f"志愿者{i}"),
            "pledges",
            "volunteer_id",
            r.json()["volunteer_token"],
            method="PUT",
        )
        post("/v1/needs", f.money_need(30_000, title=f"补贴{i}"), "needs", "need_id", community)
        post(
            "/v1/needs",
            f.volunteer_need(title=f"送餐{i}", volunteers_needed=1),
            "needs",
            "need_id",
            community,
        )
    return acked


async def facts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "needs": {str(r["need_id"]) for r in await conn.fetch("SELECT need_id FROM rm_needs")},
            "registered": await conn.fetchval(
                "SELECT count(DISTINCT event_id) FROM archive"
                " WHERE event_type = 'VolunteerRegistered'"
            ),
            "funds": {str(r["fund_id"]) for r in await conn.fetch("SELECT fund_id FROM rm_funds")},
            "pledges": {
                str(r["volunteer_id"])
                for r in await conn.fetch("SELECT volunteer_id FROM rm_pledges")
            },
            "postings": {
                str(r["posting_id"]) for r in await conn.fetch("SELECT posting_id FROM postings")
            },
            "decided": await conn.fetchval(
                "SELECT count(DISTINCT event_id) FROM archive WHERE event_type IN"
                " ('NeedPosted','FundOpened','DonationReceived','PledgeMade','PostingRefused',"
                " 'VolunteerRegistered')"
            ),
            "refused": await conn.fetchval("SELECT count(*) FROM rm_refusals"),
            "donated": await conn.fetchval(
                "SELECT coalesce(-sum(amount_minor), 0) FROM journal_lines"
                " WHERE account LIKE 'donors:%'"
            ),
            "overfilled": await conn.fetchval(
                "SELECT count(*) FROM rm_needs WHERE filled > wanted"
            ),
            "overspent": await conn.fetchval(
                "SELECT count(*) FROM (SELECT split_part(account, ':', 2) AS fund,"
                " sum(amount_minor) AS available FROM journal_lines"
                " WHERE account LIKE 'fund:%:available' GROUP BY 1) b WHERE available < 0"
            ),
            "double_booked": await conn.fetchval(
                "SELECT count(*) FROM (SELECT volunteer_id, need_id FROM rm_matches"
                " WHERE volunteer_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d"
            ),
        }
    finally:
        await conn.close()


def test_kill_minus_nine_everything_then_restart_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    ex = Exchange(var).start()
    try:
        ex.wait_healthy()
        foundation, community = ex.create_orgs(
            ("foundation", "江东街道慈善基金会", "鼓楼区", None),
            ("community", "金陵名人居社区", "鼓楼区", "江东街道"),
        )
        tokens = {"foundation": foundation, "community": community}
        with ex.http() as http:
            acked = post_load(http, tokens, rounds=12)
        dsn = ex.state["database_url"]
    except BaseException:
        ex.kill_tree()
        raise

    ex.kill_everything()  # mid-flight: most postings are not yet decided or archived

    ex = Exchange(var)
    try:
        ex.start()
        ex.wait_healthy()
        total = len(acked["postings"])

        def all_decided() -> dict[str, Any] | None:
            got = asyncio.run(facts(dsn))
            return got if got["decided"] >= total else None

        try:
            got = wait_for("every acknowledged posting to be decided", all_decided, timeout=240)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{ex.diagnostics()}") from None
        assert got["decided"] == total, "each posting decided exactly once"
        assert got["refused"] == 0
        assert set(acked["postings"]) <= got["postings"]
        assert got["needs"] == set(acked["needs"])
        assert got["funds"] == set(acked["funds"])
        assert got["pledges"] == set(acked["pledges"])
        assert got["donated"] == 50_000 * len(acked["donations"])
        assert (got["overfilled"], got["overspent"], got["double_booked"]) == (0, 0, 0)

        with ex.http() as http:  # and it carries on
            community = {"Authorization": f"Bearer {tokens['community']}"}
            r = http.post("/v1/needs", json=f.volunteer_need(title="重启之后"), headers=community)
            need_id = r.json()["need_id"]
            wait_for(
                "a posting after the restart to be visible",
                lambda: http.get(f"/v1/needs/{need_id}", headers=community).status_code == 200,
            )
    finally:
        ex.stop()
