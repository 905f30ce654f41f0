"""Refusals: an intake service's "no" to a posting the gateway had accepted, with every reason.

Version history: v1 carried one `reason` and one optional `field`; v2 carries a list of
`problems`, one per failing field, so a poster learns everything wrong at once."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from pydantic import Field

from schemas.common import Description, Frozen
from schemas.message import Message


class Problem(Frozen):
    """One thing wrong with a posting: the field (dotted path, or None for the whole posting)
    and the reason, in words for the poster."""

    field: Annotated[str, Field(max_length=200)] | None = None
    reason: Annotated[Description, Field(min_length=1, max_length=500)]


class PostingRefused(Message):
    """An intake service refused a posting the gateway had accepted."""

    TYPE: ClassVar[str] = "PostingRefused"
    VERSION: ClassVar[int] = 2
    posting_id: uuid.UUID
    posting_type: Annotated[str, Field(max_length=80)]
    problems: Annotated[list[Problem], Field(min_length=1, max_length=50)]

    @property
    def reason(self) -> str:
        """All reasons in one line, for people."""
        return "; ".join(p.reason for p in self.problems)


def posting_refused_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 {reason, field} becomes v2 {problems: [{field, reason}]}."""
    out = {k: v for k, v in payload.items() if k not in ("reason", "field")}
    out["problems"] = [{"field": payload.get("field"), "reason": payload["reason"]}]
    return out
