"""Needs: posted by a community, amended while open, cancelled, expired or fulfilled."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from schemas.common import LATEST, Description, Frozen, Moment, Money, TimeWindow, Urgency
from schemas.message import Message
from schemas.specs import NeedSpec

Reason = Annotated[Description, Field(min_length=1, max_length=500)]


WEEK = timedelta(days=7)
"""Seven days of 24 hours: the step between the occurrences of a weekly need."""


class Recurrence(Frozen):
    """A need that comes back every week: `weeks` occurrences, the first being the need as
    posted, each later one seven days after the one before (shift and deadline alike)."""

    weeks: Annotated[int, Field(ge=2, le=52)]


def recurrence_problem(need: NeedSpec, weeks: int) -> str | None:
    """Why `weeks` weekly occurrences of `need` cannot all be posted, or None.

    Every occurrence is an ordinary need, so each must pass `NeedSpec` itself: the last one's
    deadline (its shift ends by it) must fall before 2100 like every date on the wire. Checked
    before the occurrences are built, which would otherwise fail half-way."""
    last = need.deadline + (weeks - 1) * WEEK
    if last >= LATEST:
        return (
            f"the last of {weeks} weekly occurrences would be due {last.date().isoformat()}:"
            " every occurrence must be due before 2100-01-01 (UTC); post fewer weeks"
        )
    return None


class PostNeed(Message):
    """A community asks for help. The need id is assigned by the gateway; a weekly need
    (`repeat`) is decided into one `NeedPosted` per occurrence, the first under `need_id` and
    the others under ids derived from it (`services.domain.needs.occurrences`)."""

    TYPE: ClassVar[str] = "PostNeed"
    # v4: skills and categories are codes (reference data)
    VERSION: ClassVar[int] = 4  # v3: the description is sealed; v2: weekly recurrence
    need_id: uuid.UUID
    need: NeedSpec
    repeat: Recurrence | None = None

    @model_validator(mode="after")
    def _occurrences_valid(self) -> Self:
        if self.repeat is not None:
            problem = recurrence_problem(self.need, self.repeat.weeks)
            if problem:
                raise ValueError(problem)
        return self


class NeedAmendment(Frozen):
    """What a community may change while its need is open; at least one field is set."""

    urgency: Urgency | None = None
    deadline: Moment | None = None
    shift: TimeWindow | None = None
    volunteers_needed: Annotated[int, Field(ge=1, le=500)] | None = None
    amount: Money | None = None
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("an amendment changes at least one field")
        return self


class AmendNeed(Message):
    """A community changes quantity, window or urgency of one of its open needs."""

    TYPE: ClassVar[str] = "AmendNeed"
    need_id: uuid.UUID
    amendment: NeedAmendment


class CancelNeed(Message):
    """A community withdraws one of its needs; what it holds is released."""

    TYPE: ClassVar[str] = "CancelNeed"
    need_id: uuid.UUID
    reason: Reason


class NeedPosted(Message):
    """The needs service accepted a need; it is open for matching."""

    TYPE: ClassVar[str] = "NeedPosted"
    # v3: codes for skills and categories (reference data)
    VERSION: ClassVar[int] = 3  # v2: the description is sealed (plain only when upcast from v1)
    need_id: uuid.UUID
    need: NeedSpec


class NeedAmended(Message):
    """A need changed; `need` is the whole need as it now stands, `changed` names the fields."""

    TYPE: ClassVar[str] = "NeedAmended"
    # v3: codes for skills and categories (reference data)
    VERSION: ClassVar[int] = 3  # v2: the description is sealed (plain only when upcast from v1)
    need_id: uuid.UUID
    need: NeedSpec
    changed: Annotated[list[str], Field(min_length=1, max_length=10)]


class NeedCancelled(Message):
    """The community cancelled the need; its reservations are released."""

    TYPE: ClassVar[str] = "NeedCancelled"
    need_id: uuid.UUID
    reason: Reason


class NeedExpired(Message):
    """The deadline passed (as told by a clock tick on the log) before the need was met."""

    TYPE: ClassVar[str] = "NeedExpired"
    need_id: uuid.UUID
    deadline: Moment


class NeedFulfilled(Message):
    """Everything the need asked for was confirmed delivered (hours served or money paid)."""

    TYPE: ClassVar[str] = "NeedFulfilled"
    need_id: uuid.UUID
