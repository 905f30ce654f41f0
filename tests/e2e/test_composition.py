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
        community = ex.funded_community("分开运行基金会", "分开运行社区", 10**10)
        with httpx.Client(base_url=ex.url, timeout=30) as http:
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
