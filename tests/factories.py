"""Builders of valid postings and envelopes in the demo's words, for tests to vary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.messages import Message

T0 = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # Saturday 10:00 in Nanjing


def iso(dt: datetime) -> str:
    return dt.isoformat()


def volunteer_need(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "银发助餐：周六午餐送餐上门",
        "kind": "volunteer_hours",
        "category": "elderly_meals",
        "place": {"district": "鼓楼区", "street": "江东街道", "community": "金陵名人居"},
        "urgency": "high",
        "deadline": iso(T0 + timedelta(hours=4)),
        "people_served": 40,
        "shift": {
            "start": iso(T0 + timedelta(minutes=30)),
            "end": iso(T0 + timedelta(hours=2, minutes=30)),
        },
        "volunteers_needed": 2,
        "required_skills": ["meal_delivery"],
    }
    body.update(over)
    return body


def money_need(amount: int = 300_000, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "银发助餐点餐费补贴",
        "kind": "money",
        "category": "elderly_meals",
        "place": {"district": "鼓楼区", "street": "江东街道"},
        "deadline": iso(T0 + timedelta(days=2)),
        "amount": {"amount_minor": amount, "currency": "CNY"},
    }
    body.update(over)
    return body


def fund(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "江东街道银发助餐专项基金",
        "foundation": "江东街道慈善基金会",
        "categories": ["elderly_meals"],
        "districts": ["鼓楼区"],
    }
    body.update(over)
    return body


def donation(amount: int = 800_000, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "donor": "金陵名人居业主委员会",
        "amount": {"amount_minor": amount, "currency": "CNY"},
    }
    body.update(over)
    return body


def pledge(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pseudonym": "王师傅",
        "home": {"district": "鼓楼区", "street": "江东街道"},
        "skills": ["driving", "meal_delivery"],
        "availability": [
            {"start": iso(T0 - timedelta(hours=1)), "end": iso(T0 + timedelta(hours=4))}
        ],
        "weekly_hour_limit": 6,
    }
    body.update(over)
    return body


def envelope(
    payload: Message,
    *,
    at: datetime = T0,
    event_id: uuid.UUID | None = None,
    stream: str = "test",
    org: str = "test-org",
) -> Envelope[Message]:
    eid = event_id or uuid.uuid4()
    return Envelope[Message](
        event_id=eid,
        event_type=payload.TYPE,
        schema_version=payload.VERSION,
        stream_id=stream,
        stream_seq=0,
        occurred_at=at,
        recorded_at=at,
        actor=Actor(org_id=org, role=Role.COMMUNITY),
        correlation_id=eid,
        payload=payload,
    )
