"""Hostile postings are refused at the door with a 422 that names the field, and nothing is
written: personal data, text PostgreSQL cannot hold, impossible dates, overflowing amounts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from tests import factories as f
from tests.integration.conftest import org_token
from tests.integration.test_gateway import postings_count

pytestmark = pytest.mark.integration


@pytest.fixture
def community(database_url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '江东社区')}"}


def goods(**over: Any) -> dict[str, Any]:
    body = f.money_need(**({"kind": "goods", "quantity": 10, "unit": "箱"} | over))
    del body["amount"]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f.volunteer_need(description="独居老人王某，电话13812345678"), "description"),
        (f.volunteer_need(description="身份证32010219800101001X"), "description"),
        (f.volunteer_need(title="联系 wang@example.cn"), "title"),
        (
            f.volunteer_need(place={"district": "鼓楼区", "street": "座机 025-84561234"}),
            "place.street",
        ),
        (f.volunteer_need(description="电话\u0000123"), "description"),
        (f.volunteer_need(description="\ud800"), "description"),
        (f.volunteer_need(place={"district": "鼓楼区\u200b"}), "place.district"),
        (f.money_need(deadline="9999-12-31T23:00:00-08:00"), "deadline"),
        (
            goods(quantity=1_000_000, unit_cost={"amount_minor": 10**13, "currency": "CNY"}),
            "(body)",
        ),
    ],
)
def test_a_hostile_need_is_refused_naming_the_field_and_writes_nothing(
    client: TestClient,
    database_url: str,
    community: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    raw = json.dumps(
        body
    )  # ASCII escapes: a lone surrogate travels as \ud800, as attackers send it
    headers = community | {"Content-Type": "application/json"}
    r = client.post("/v1/needs", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    fields = [p["field"] for p in r.json()["detail"]]
    assert field in fields, fields
    assert "13812345678" not in r.text and "025-84561234" not in r.text  # never echoed
    assert postings_count(database_url) == 0


def test_personal_data_in_an_idempotency_key_is_refused(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    headers = community | {"Idempotency-Key": "wang-13812345678"}
    r = client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "header.Idempotency-Key"
    assert postings_count(database_url) == 0


def test_personal_data_in_a_pseudonym_is_refused(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    body = {"pseudonym": "王师傅13812345678", "home": {"district": "鼓楼区"}}
    r = client.post("/v1/volunteers", json=body, headers=community)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "pseudonym"
    assert postings_count(database_url) == 0
