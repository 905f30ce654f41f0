"""Models of superseded schema versions, kept only so their JSON Schema stays exported.

Readers never use these: `schemas.codec` upcasts old payloads to the current model. They exist
so that a client validating an old message from the log can still find its schema.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from schemas.common import Description, Frozen, Name, Place, TimeWindow
from schemas.matches import SupplyKind
from schemas.message import Message
from schemas.specs import FundSpec, NeedSpec, SkillSet


class PostingRefusedV1(Message):
    """PostingRefused as first published: one reason and one optional field."""

    TYPE: ClassVar[str] = "PostingRefused"
    VERSION: ClassVar[int] = 1
    posting_id: uuid.UUID
    posting_type: Annotated[str, Field(max_length=80)]
    reason: Description
    field: Annotated[str, Field(max_length=200)] | None = None


def _post_need_v1() -> type[Message]:
    # Named as published (the JSON Schema's $defs key is the class name); the docstring is the
    # published description.
    class PostNeed(Message):
        """A community asks for help. The need id is assigned by the gateway."""

        TYPE: ClassVar[str] = "PostNeed"
        VERSION: ClassVar[int] = 1
        need_id: uuid.UUID
        need: NeedSpec

    return PostNeed


PostNeedV1 = _post_need_v1()
"""PostNeed as first published: one need, no weekly recurrence."""


def _pledges_v1() -> dict[str, type[Message]]:
    """The messages that carried the first PledgeSpec (three travel ranges, no distance).

    Named as published: a JSON Schema's $defs keys are class names."""

    class TravelRange(StrEnum):
        SAME_STREET = "same_street"
        SAME_DISTRICT = "same_district"
        ANYWHERE = "anywhere"

    TravelRange.__doc__ = (  # as published
        "How far a volunteer will go from home; grids and distance come with the matching issue."
    )

    class PledgeSpec(Frozen):
        """A volunteer's offer of time. Pseudonymous: no phone, ID number or address, ever."""

        pseudonym: Name
        home: Place
        skills: Annotated[SkillSet, Field(min_length=1)]
        availability: Annotated[list[TimeWindow], Field(min_length=1, max_length=50)]
        weekly_hour_limit: Annotated[int, Field(ge=1, le=60)] = 8
        travel: TravelRange = TravelRange.SAME_DISTRICT

    class MakePledge(Message):
        """A volunteer pledges time and skills."""

        TYPE: ClassVar[str] = "MakePledge"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class AmendPledge(Message):
        """A volunteer replaces their pledge (skills, availability, limits)."""

        TYPE: ClassVar[str] = "AmendPledge"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class PledgeMade(Message):
        """A volunteer's pledge is on record and can be matched."""

        TYPE: ClassVar[str] = "PledgeMade"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class PledgeAmended(Message):
        """The pledge now reads as `pledge`; proposals it no longer fits are released."""

        TYPE: ClassVar[str] = "PledgeAmended"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class SupplyListed(Message):
        """Supply owned by another partition that needs here may ask for.

        `version` grows with every change the router saw (a donation, an amended pledge), so a
        need that was refused may ask again once the supply changed. `net_minor` (funds) is what
        was donated less refunds: a hint of what the owner may grant, never a balance to spend."""

        TYPE: ClassVar[str] = "SupplyListed"
        VERSION: ClassVar[int] = 1
        supply: SupplyKind
        supply_id: uuid.UUID
        owner_partition: Annotated[int, Field(ge=0, le=1023)]
        version: Annotated[int, Field(ge=1)]
        active: bool
        pledge: PledgeSpec | None = None
        fund: FundSpec | None = None
        net_minor: Annotated[int, Field(ge=0)] = 0

    SupplyListed.__doc__ = (  # as published, indented as a top-level class's docstring
        "Supply owned by another partition that needs here may ask for.\n\n"
        "    `version` grows with every change the router saw (a donation, an amended pledge), "
        "so a\n    need that was refused may ask again once the supply changed. `net_minor` "
        "(funds) is what\n    was donated less refunds: a hint of what the owner may grant, "
        "never a balance to spend."
    )
    return {m.TYPE: m for m in (MakePledge, AmendPledge, PledgeMade, PledgeAmended, SupplyListed)}


_PLEDGES_V1 = _pledges_v1()
MakePledgeV1 = _PLEDGES_V1["MakePledge"]
AmendPledgeV1 = _PLEDGES_V1["AmendPledge"]
PledgeMadeV1 = _PLEDGES_V1["PledgeMade"]
PledgeAmendedV1 = _PLEDGES_V1["PledgeAmended"]
SupplyListedV1 = _PLEDGES_V1["SupplyListed"]

LEGACY: tuple[type[Message], ...] = (PostingRefusedV1, PostNeedV1, *_PLEDGES_V1.values())
