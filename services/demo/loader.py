"""Posts the demo scenario through the public HTTP API, like any client would.

Every posting carries an Idempotency-Key made of the scenario week and the item, so loading
the demo twice in the same week (e.g. after a restart) writes nothing new.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import httpx

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


def load_demo(base_url: str, today: date | None = None, wait_for_match: float = 60) -> str:
    """Post funds, donations, pledges and needs; wait until a match is visible; summarise."""
    data = scenario()
    monday = anchor_monday(today or datetime.now(SHANGHAI).date())
    week = monday.isoformat()
    fund_ids: dict[str, str] = {}
    need_ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=10) as http:

        def post(path: str, org: str, ref: str, body: dict[str, Any]) -> dict[str, Any]:
            r = http.post(
                path,
                json=resolve(body, monday),
                headers={"X-Exchange-Org": org, "Idempotency-Key": f"demo/{week}/{ref}"},
            )
            if r.status_code != 202:
                raise RuntimeError(f"demo posting {ref} refused: {r.status_code} {r.text}")
            result: dict[str, Any] = r.json()
            return result

        for f in data["funds"]:
            fund_ids[f["ref"]] = post("/v1/funds", f["org"], f"fund/{f['ref']}", f["body"])[
                "fund_id"
            ]
        for i, d in enumerate(data["donations"]):
            post(f"/v1/funds/{fund_ids[d['fund']]}/donations", d["org"], f"donation/{i}", d["body"])
        for p in data["pledges"]:
            post("/v1/pledges", p["org"], f"pledge/{p['ref']}", p["body"])
        for n in data["needs"]:
            need_ids.append(post("/v1/needs", n["org"], f"need/{n['ref']}", n["body"])["need_id"])

        deadline = time.monotonic() + wait_for_match
        matches: list[Any] = []
        while time.monotonic() < deadline:
            matches = http.get("/v1/matches").json()
            if matches:
                break
            time.sleep(0.2)
    return (
        f"demo loaded (week of {week}): {len(data['funds'])} funds, "
        f"{len(data['donations'])} donations, {len(data['pledges'])} volunteers, "
        f"{len(data['needs'])} needs; {len(matches)} matches proposed so far "
        f"(see {base_url}/v1/matches)"
    )
