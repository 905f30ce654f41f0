"""Cross-owner steps of matching, as request and reply events on the matcher's log.

Each balance (a fund) and each calendar (a volunteer) has exactly one owning partition of
`matcher.inputs`, and so does each need. When a need's owner wants supply that another
partition owns, it asks on the log (`SupplyRequested`); the supply's owner alone decides and
answers (`SupplyGranted` holds the supply, `SupplyRefused` does not). Later the need's owner
gives a hold back (`SupplyReleased`), or the supply's owner asks for it back
(`SupplyRevoked`). The router tells partitions about supply owned elsewhere
(`SupplyListed`) so that their needs know whom to ask.

Because every step is an event on the partition that decides, a replay of each partition's
log reaches the same decisions, and no worker ever decides on a balance it does not own.
"""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from schemas.funds import ReservePercent
from schemas.matches import Reason, SupplyKind
from schemas.message import Message
from schemas.specs import FundSpec, NeedSpec, PledgeSpec

Partition = Annotated[int, Field(ge=0, le=1023)]
Quantity = Annotated[int, Field(gt=0, le=10**15)]
"""One volunteer place, or minor units of money."""


class SupplyListed(Message):
    """Supply owned by another partition that needs here may ask for.

    `version` grows with every change the router saw (a donation, an amended pledge), so a
    need that was refused may ask again once the supply changed. `net_minor` (funds) is what
    was donated less refunds: a hint of what the owner may grant, never a balance to spend.
    `urgent_reserve_percent` (funds) is the share of it the owner holds back for high and
    critical needs, so that a low or normal need asks only for what lies beyond it."""

    TYPE: ClassVar[str] = "SupplyListed"
    # v5: a fund's reserve for urgent needs; v4: skills and categories are codes
    VERSION: ClassVar[int] = 5  # v3: sealed pseudonym; v2: travel by community, or by distance
    supply: SupplyKind
    supply_id: uuid.UUID
    owner_partition: Partition
    version: Annotated[int, Field(ge=1)]
    active: bool
    pledge: PledgeSpec | None = None
    fund: FundSpec | None = None
    net_minor: Annotated[int, Field(ge=0)] = 0
    urgent_reserve_percent: ReservePercent = 0

    @model_validator(mode="after")
    def _one_spec(self) -> Self:
        expect_pledge = self.supply is SupplyKind.VOLUNTEER
        if (self.pledge is not None) != expect_pledge or (self.fund is not None) == expect_pledge:
            raise ValueError(f"a {self.supply.value} listing carries exactly its own spec")
        return self


class SupplyRequested(Message):
    """The need's owner asks the supply's owner to hold `quantity` for this need.

    The need's owner has set that much of the need aside, so it is never filled twice; the
    request carries the need so the supply's owner can check skills, travel and earmarks."""

    TYPE: ClassVar[str] = "SupplyRequested"
    # v3: codes for skills and categories (reference data)
    VERSION: ClassVar[int] = 3  # v2: the need's description is sealed
    hold_id: uuid.UUID
    need_id: uuid.UUID
    need: NeedSpec
    need_zone: Annotated[str, Field(min_length=1, max_length=60)]
    from_partition: Partition
    supply: SupplyKind
    supply_id: uuid.UUID
    quantity: Quantity


class SupplyGranted(Message):
    """The supply's owner holds `quantity` (at most what was asked) for the need."""

    TYPE: ClassVar[str] = "SupplyGranted"
    hold_id: uuid.UUID
    need_id: uuid.UUID
    supply: SupplyKind
    supply_id: uuid.UUID
    quantity: Quantity


class SupplyRefused(Message):
    """The supply's owner cannot hold anything for the need; the reason says why."""

    TYPE: ClassVar[str] = "SupplyRefused"
    hold_id: uuid.UUID
    need_id: uuid.UUID
    supply_id: uuid.UUID
    reason: Reason


class SupplyReleased(Message):
    """The need's owner gives a hold back (declined, expired, withdrawn, no-show, unwanted)."""

    TYPE: ClassVar[str] = "SupplyReleased"
    hold_id: uuid.UUID
    supply_id: uuid.UUID
    reason: Reason
    no_show: bool = False


class SupplyRevoked(Message):
    """The supply's owner asks for a hold back (pledge withdrawn, refund left the fund short).

    The need's owner releases it if the match is still only proposed; a shift already
    accepted, or money already confirmed, ends through the match's own lifecycle."""

    TYPE: ClassVar[str] = "SupplyRevoked"
    hold_id: uuid.UUID
    need_id: uuid.UUID
    reason: Reason
