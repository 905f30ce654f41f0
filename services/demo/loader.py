"""Loads the demo scenario the way real participants would: organisations are registered by
the operator (`exchange orgs create`), then everything else goes through the public HTTP API
with each organisation's own bearer token.

Every posting carries an Idempotency-Key made of the scenario week and the item, so loading
the demo twice in the same week (e.g. after a restart) writes nothing new.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from schemas.messages import OrgKind
from services import operator
from services.identity import (
    COMMAND_LINE,
    OrganisationExists,
    create_operator,
    create_organisation,
    rotate_operator_token,
)
from services.platform.db import connect

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def scenario() -> dict[str, Any]:
    """The scenario as stored in the repository (times still symbolic)."""
    text = (resources.files("services.demo") / "scenario.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def anchor_monday(today: date) -> date:
    """Monday of the ISO week after `today`'s: far enough ahead that every time is future."""
    return today - timedelta(days=today.weekday()) + timedelta(days=7)


def resolve(value: Any, monday: date) -> Any:
    """Replace every '@day HH:MM' string with an ISO datetime in Asia/Shanghai."""
    if isinstance(value, dict):
        return {k: resolve(v, monday) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, monday) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        day, hhmm = value[1:].split()
        hour, minute = (int(x) for x in hhmm.split(":"))
        d = monday + timedelta(days=WEEKDAYS[day])
        return datetime(d.year, d.month, d.day, hour, minute, tzinfo=SHANGHAI).isoformat()
    return value


async def register_organisations(dsn: str, orgs: list[dict[str, Any]]) -> dict[str, str]:
    """Register the scenario's organisations, or find them (the demo loads again on every
    `exchange up --demo`); a fresh token for each, by ref. A found one gets its token rotated,
    as the operator would (`exchange orgs rotate-token`): registering again is refused."""
    conn = await connect(dsn)
    try:
        tokens = {}
        for o in orgs:
            try:
                _, token = await create_organisation(
                    conn, OrgKind(o["kind"]), o["name"], o["district"], o.get("street")
                )
            except OrganisationExists as exc:
                if not exc.same_name or exc.existing["kind"] != o["kind"]:
                    raise
                token = await operator.rotate(conn, COMMAND_LINE, exc.existing["org_id"])
            tokens[o["ref"]] = token
        try:
            _, tokens[DEMO_OPERATOR] = await create_operator(conn, DEMO_OPERATOR)
        except ValueError:  # loaded before: a fresh token, as `exchange operators rotate-token`
            _, tokens[DEMO_OPERATOR] = await rotate_operator_token(conn, DEMO_OPERATOR)
        return tokens
    finally:
        await conn.close()


DEMO_OPERATOR = "运营-演示"
"""The demo's operator (`/v1/orgs` over HTTP: register, suspend, reinstate organisations)."""


SIGN_IN_AS = {
    "foundation": "jiangdong-foundation",
    "street office / community": "yongsheng-community",
    "social organisation": "jiangdong-social-work-centre",
    "auditor": "audit-office",
}
"""Whose token the demo prints for each role, so a newcomer can open the web app at once."""


def load_demo(
    base_url: str,
    database_url: str,
    today: date | None = None,
    wait_for_match: float = 60,
    sign_ins: dict[str, str] | None = None,
) -> str:
    """Register organisations, then post funds, donations, volunteers, pledges and needs over
    HTTP; wait until a match is visible; return a summary. Fills `sign_ins` (role → token)
    with one ready sign-in per role, a volunteer's among them (re-issued on every load)."""
    data = scenario()
    monday = anchor_monday(today or datetime.now(SHANGHAI).date())
    week = monday.isoformat()
    tokens = asyncio.run(register_organisations(database_url, data["organisations"]))
    fund_ids: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=10) as http:

        def call(method: str, path: str, token: str, ref: str, body: dict[str, Any]) -> Any:
            r = http.request(
                method,
                path,
                json=resolve(body, monday),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": f"demo/{week}/{ref}",
                },
            )
            if r.status_code != 202:
                raise RuntimeError(f"demo posting {ref} refused: {r.status_code} {r.text}")
            return r.json()

        for f in data["funds"]:
            answer = call("POST", "/v1/funds", tokens[f["org"]], f"fund/{f['ref']}", f["body"])
            fund_ids[f["ref"]] = answer["fund_id"]
        for i, d in enumerate(data["donations"]):
            call(
                "POST",
                f"/v1/funds/{fund_ids[d['fund']]}/donations",
                tokens[d["org"]],
                f"donation/{i}",
                d["body"],
            )
        for p in data["pledges"]:
            body = p["body"]
            volunteer = {"pseudonym": body["pseudonym"], "home": body["home"]}
            answer = call(
                "POST", "/v1/volunteers", tokens[p["org"]], f"volunteer/{p['ref']}", volunteer
            )
            call(
                "PUT",
                f"/v1/volunteers/{answer['volunteer_id']}/pledge",
                tokens[p["org"]],
                f"pledge/{p['ref']}",
                body,
            )
            if sign_ins is not None and "volunteer" not in sign_ins:
                fresh = http.post(
                    f"/v1/volunteers/{answer['volunteer_id']}/token",
                    headers={"Authorization": f"Bearer {tokens[p['org']]}"},
                )
                if fresh.status_code == 200:
                    sign_ins["volunteer"] = fresh.json()["volunteer_token"]
        if sign_ins is not None:
            sign_ins.update({role: tokens[ref] for role, ref in SIGN_IN_AS.items()})
            sign_ins["operator"] = tokens[DEMO_OPERATOR]
        for n in data["needs"]:
            call("POST", "/v1/needs", tokens[n["org"]], f"need/{n['ref']}", n["body"])

        auditor = tokens["audit-office"]
        deadline = time.monotonic() + wait_for_match
        matches: list[Any] = []
        while time.monotonic() < deadline:
            matches = http.get(
                "/v1/matches", headers={"Authorization": f"Bearer {auditor}"}
            ).json()["items"]
            if matches:
                break
            time.sleep(0.2)
    return (
        f"demo loaded (week of {week}): {len(data['organisations'])} organisations, "
        f"{len(data['funds'])} funds, {len(data['donations'])} donations, "
        f"{len(data['pledges'])} volunteers, {len(data['needs'])} needs; "
        f"{len(matches)} matches proposed so far"
    )
