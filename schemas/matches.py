"""Matching: the matcher proposes; volunteers accept or decline; proposals expire; the community
confirms completion (hours served, money received) or records a no-show."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from schemas.common import Description, Money, TimeWindow
from schemas.message import Message
from schemas.sealed import Sealed

Reason = Annotated[Description, Field(min_length=1, max_length=500)]
Minutes = Annotated[int, Field(gt=0, le=24 * 60 * 7)]


class SupplyKind(StrEnum):
    """What meets a need in a match: a volunteer's shift or money from a fund."""

    VOLUNTEER = "volunteer"
    FUND = "fund"


class MatchProposed(Message):
    """The matcher proposes that this supply meets (part of) this need.

    Exactly one of a volunteer shift (`volunteer_id`, `shift`, `minutes`) or a fund amount
    (`fund_id`, `amount`) is set."""

    TYPE: ClassVar[str] = "MatchProposed"
    match_id: uuid.UUID
    need_id: uuid.UUID
    supply: SupplyKind
    volunteer_id: uuid.UUID | None = None
    shift: TimeWindow | None = None
    minutes: Minutes | None = None
    fund_id: uuid.UUID | None = None
    amount: Money | None = None
    zone: Annotated[str, Field(min_length=1, max_length=60)]
    rule: Annotated[str, Field(max_length=200)]

    @model_validator(mode="after")
    def _one_supply(self) -> Self:
        volunteer = (self.volunteer_id, self.shift, self.minutes)
        fund = (self.fund_id, self.amount)
        if self.supply is SupplyKind.VOLUNTEER:
            ok = all(v is not None for v in volunteer) and all(v is None for v in fund)
        else:
            ok = all(v is not None for v in fund) and all(v is None for v in volunteer)
        if not ok:
            raise ValueError(f"a {self.supply.value} match carries exactly its own fields")
        return self


class AcceptMatch(Message):
    """A volunteer accepts a proposed shift."""

    TYPE: ClassVar[str] = "AcceptMatch"
    match_id: uuid.UUID


class DeclineMatch(Message):
    """A volunteer declines a proposed shift; the matcher moves to the next candidate."""

    TYPE: ClassVar[str] = "DeclineMatch"
    VERSION: ClassVar[int] = 2  # v2: the reason is sealed (a string only when upcast from v1)
    match_id: uuid.UUID
    reason: Sealed | Reason | None = None
    """Sealed under the volunteer's key, so that forgetting the volunteer forgets it."""


class ConfirmMatch(Message):
    """The community confirms what was delivered: minutes served or money received."""

    TYPE: ClassVar[str] = "ConfirmMatch"
    match_id: uuid.UUID
    minutes_served: Minutes | None = None
    amount_received: Money | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Self:
        if (self.minutes_served is None) == (self.amount_received is None):
            raise ValueError("confirm either minutes_served or amount_received")
        return self


class RecordNoShow(Message):
    """The community records that the volunteer did not come."""

    TYPE: ClassVar[str] = "RecordNoShow"
    match_id: uuid.UUID


class MatchAccepted(Message):
    """The volunteer accepted; the shift is booked."""

    TYPE: ClassVar[str] = "MatchAccepted"
    match_id: uuid.UUID
    need_id: uuid.UUID


class MatchDeclined(Message):
    """The volunteer declined; the supply returns."""

    TYPE: ClassVar[str] = "MatchDeclined"
    VERSION: ClassVar[int] = 2  # v2: the reason is sealed (a string only when upcast from v1)
    match_id: uuid.UUID
    need_id: uuid.UUID
    reason: Sealed | Reason | None = None
    """Copied from the DeclineMatch: sealed under the volunteer's key."""


class MatchExpired(Message):
    """Nobody accepted in time (as told by a clock tick on the log); the supply returns."""

    TYPE: ClassVar[str] = "MatchExpired"
    match_id: uuid.UUID
    need_id: uuid.UUID


class MatchCompleted(Message):
    """Delivery confirmed by the community: minutes served or money disbursed."""

    TYPE: ClassVar[str] = "MatchCompleted"
    match_id: uuid.UUID
    need_id: uuid.UUID
    minutes_served: Minutes | None = None
    amount: Money | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Self:
        if (self.minutes_served is None) == (self.amount is None):
            raise ValueError("a completion carries either minutes_served or amount")
        return self


class MatchWithdrawn(Message):
    """The matcher took a proposal back because its need or its supply went away (need
    cancelled or changed, pledge withdrawn, donation refunded); the supply returns."""

    TYPE: ClassVar[str] = "MatchWithdrawn"
    match_id: uuid.UUID
    need_id: uuid.UUID
    reason: Reason


class NoShowRecorded(Message):
    """The volunteer did not come; the need reopens if time allows."""

    TYPE: ClassVar[str] = "NoShowRecorded"
    match_id: uuid.UUID
    need_id: uuid.UUID
    volunteer_id: uuid.UUID
