"""The catalogue: commands the gateway posts and events the services decide.

Commands are imperative (`PostNeed`), events past tense (`NeedPosted`). Each class names its
wire type and schema version; `schemas.codec` upcasts stored older versions on read.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from schemas.common import Description, Frozen, Money, TimeWindow
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec


class Message(Frozen):
    """Base of every payload: its wire name and current schema version."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


# ---- commands: what the gateway accepted from a client, for an intake service to decide ----


class PostNeed(Message):
    """A community asks for help. The need id is assigned by the gateway."""

    TYPE: ClassVar[str] = "PostNeed"
    need_id: uuid.UUID
    need: NeedSpec


class OpenFund(Message):
    """A foundation opens a fund with restrictions."""

    TYPE: ClassVar[str] = "OpenFund"
    fund_id: uuid.UUID
    fund: FundSpec


class ReceiveDonation(Message):
    """A foundation records a donation into one of its funds."""

    TYPE: ClassVar[str] = "ReceiveDonation"
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    donation: DonationSpec


class MakePledge(Message):
    """A volunteer (registered by a community or social organisation) pledges time and skills."""

    TYPE: ClassVar[str] = "MakePledge"
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


Command = PostNeed | OpenFund | ReceiveDonation | MakePledge


# ---- events: facts decided by the owning service ----


class NeedPosted(Message):
    """The needs service accepted a need; it is open for matching."""

    TYPE: ClassVar[str] = "NeedPosted"
    need_id: uuid.UUID
    need: NeedSpec


class FundOpened(Message):
    """The donations service opened a fund; it can now receive donations."""

    TYPE: ClassVar[str] = "FundOpened"
    fund_id: uuid.UUID
    fund: FundSpec


class DonationReceived(Message):
    """Money arrived in a fund and is available under the fund's restrictions."""

    TYPE: ClassVar[str] = "DonationReceived"
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    donation: DonationSpec


class PledgeMade(Message):
    """A volunteer's pledge is on record and can be matched."""

    TYPE: ClassVar[str] = "PledgeMade"
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


class PostingRefused(Message):
    """An intake service refused a posting the gateway had accepted; the reason is for
    the poster."""

    TYPE: ClassVar[str] = "PostingRefused"
    posting_id: uuid.UUID
    posting_type: Annotated[str, Field(max_length=80)]
    reason: Description
    field: Annotated[str, Field(max_length=200)] | None = None


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
    minutes: Annotated[int, Field(gt=0)] | None = None
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


Event = NeedPosted | FundOpened | DonationReceived | PledgeMade | PostingRefused | MatchProposed

ALL_MESSAGES: tuple[type[Message], ...] = (
    PostNeed,
    OpenFund,
    ReceiveDonation,
    MakePledge,
    NeedPosted,
    FundOpened,
    DonationReceived,
    PledgeMade,
    PostingRefused,
    MatchProposed,
)
