"""Rules of the catalogue's own models: each refuses the bad case and accepts the good one."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.messages import (
    ConfirmMatch,
    MatchCompleted,
    MatchProposed,
    MessageDeadLettered,
    NeedAmendment,
)
from tests import factories as f

pytestmark = pytest.mark.unit

ID = uuid.uuid4()
SHIFT = f.volunteer_need()["shift"]
CNY = {"amount_minor": 100, "currency": "CNY"}


@pytest.mark.parametrize(
    ("model", "good", "bad", "message"),
    [
        (NeedAmendment, {"urgency": "high"}, {}, "at least one field"),
        (
            NeedAmendment,
            {"volunteers_needed": 3},
            {"volunteers_needed": 0},
            "greater than or equal",
        ),
        (
            ConfirmMatch,
            {"match_id": ID, "minutes_served": 90},
            {"match_id": ID, "minutes_served": 90, "amount_received": CNY},
            "either",
        ),
        (ConfirmMatch, {"match_id": ID, "amount_received": CNY}, {"match_id": ID}, "either"),
        (
            MatchCompleted,
            {"match_id": ID, "need_id": ID, "amount": CNY},
            {"match_id": ID, "need_id": ID, "minutes_served": 0},
            "greater than 0",
        ),
        (
            MatchProposed,
            {
                "match_id": ID,
                "need_id": ID,
                "supply": "fund",
                "fund_id": ID,
                "amount": CNY,
                "zone": "nanjing",
                "rule": "r",
            },
            {
                "match_id": ID,
                "need_id": ID,
                "supply": "fund",
                "fund_id": ID,
                "amount": CNY,
                "volunteer_id": ID,
                "zone": "nanjing",
                "rule": "r",
            },
            "exactly its own fields",
        ),
        (
            MatchProposed,
            {
                "match_id": ID,
                "need_id": ID,
                "supply": "volunteer",
                "volunteer_id": ID,
                "shift": SHIFT,
                "minutes": 120,
                "zone": "nanjing",
                "rule": "r",
            },
            {
                "match_id": ID,
                "need_id": ID,
                "supply": "volunteer",
                "volunteer_id": ID,
                "zone": "nanjing",
                "rule": "r",
            },
            "exactly its own fields",
        ),
        (
            MessageDeadLettered,
            {
                "topic": "t",
                "partition": 0,
                "offset": 0,
                "consumer": "c",
                "reason": "r",
                "original_key_hex": "",
                "original_value_hex": "7b7d",
            },
            {
                "topic": "t",
                "partition": 0,
                "offset": 0,
                "consumer": "c",
                "reason": "r",
                "original_key_hex": "",
                "original_value_hex": "not hex",
            },
            "pattern",
        ),
    ],
)
def test_rule(model: Any, good: dict[str, Any], bad: dict[str, Any], message: str) -> None:
    model.model_validate(good)
    with pytest.raises(ValidationError, match=message):
        model.model_validate(bad)
