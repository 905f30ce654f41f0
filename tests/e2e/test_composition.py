"""`exchange up` with one process per service (`EXCHANGE_COMPOSITION=apart`, as the production
manifests run them) still matches a need end to end; the default composition is what every
other e2e and fault test runs (services/composition.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services import SERVICES
from tests import factories as f
from tests.e2e.harness import Exchange, wait_for

pytestmark = pytest.mark.e2e


def test_one_process_per_service_matches_a_money_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXCHANGE_COMPOSITION", "apart")
    ex = Exchange(tmp_path / "var").start()
    try:
        ex.wait_healthy()
        assert set(ex.state["services"]) == set(SERVICES), "one process for each service"
        assert len(set(ex.state["services"].values())) == len(SERVICES)
        foundation, community = ex.create_orgs(
            ("foundation", "分开运行基金会", "鼓楼区", None),
            ("community", "分开运行社区", "鼓楼区", "江东街道"),
        )
        with httpx.Client(base_url=ex.url, timeout=30) as http:
            fh = {"Authorization": f"Bearer {foundation}"}
            fund = http.post("/v1/funds", json=f.fund(), headers=fh)
            assert fund.status_code in (201, 202), fund.text
            given = http.post(
                f"/v1/funds/{fund.json()['fund_id']}/donations",
                json=f.donation(10**10),
                headers=fh,
            )
            assert given.status_code == 202, given.text
            ch = {"Authorization": f"Bearer {community}"}
            need = http.post("/v1/needs", json=f.money_need(100), headers=ch)
            assert need.status_code == 202, need.text
            url = f"/v1/needs/{need.json()['need_id']}"

            def proposed() -> list[object] | None:
                r = http.get(url, headers=ch)
                return r.json().get("matches") if r.status_code == 200 else None

            [match] = wait_for("the need to be matched by the fund", proposed, timeout=90)
            assert match["supply"] == "fund"  # type: ignore[index]
    finally:
        ex.stop()
