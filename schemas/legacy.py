"""Models of superseded schema versions, kept only so their JSON Schema stays exported.

Readers never use these: `schemas.codec` upcasts old payloads to the current model. They exist
so that a client validating an old message from the log can still find its schema.
"""

from __future__ import annotations

import types
import uuid
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import Field

from schemas import needs, reservations, specs, volunteers
from schemas.common import Category, Description, Frozen, Name, Place, Skill, TimeWindow
from schemas.matches import SupplyKind
from schemas.message import Message
from schemas.needs import Recurrence
from schemas.reservations import Partition, Quantity

SkillSet = Annotated[list[Skill], Field(max_length=12)]
"""Skills as published before they became reference data: the closed `Skill` enumeration."""


class FundSpec(specs.FundSpec):
    __doc__ = specs.FundSpec.__doc__  # as published, before categories became codes
    categories: Annotated[list[Category], Field(max_length=20)] = Field(default_factory=list)  # type: ignore[assignment]


def _enum_era_specs() -> tuple[type[specs.NeedSpec], type[specs.PledgeSpec]]:
    """The specs as published before skills and categories became reference data (codes):
    the same rules with the closed enumerations. Named as published ($defs keys)."""

    class NeedSpec(specs.NeedSpec):
        __doc__ = specs.NeedSpec.__doc__
        category: Category
        required_skills: SkillSet = Field(default_factory=list)  # type: ignore[assignment]

    class PledgeSpec(specs.PledgeSpec):
        __doc__ = specs.PledgeSpec.__doc__
        skills: Annotated[SkillSet, Field(min_length=1)]  # type: ignore[assignment]

    return NeedSpec, PledgeSpec


EnumNeedSpec, EnumPledgeSpec = _enum_era_specs()


class NeedSpec(EnumNeedSpec):  # type: ignore[valid-type,misc]
    """A community's need: volunteer hours for a shift, an amount of money, or goods.

    Carries how many people are served, never who they are."""

    # As published before sealing (docs/privacy.md): the description is plain text. Named as
    # published: a JSON Schema's $defs keys are class names.
    description: Description = ""


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


def _before_sealing() -> dict[str, type[Message]]:
    """The last versions that carried pseudonyms and need descriptions as plain text.

    Named as published: a JSON Schema's $defs keys are class names."""

    class PledgeSpec(EnumPledgeSpec):  # type: ignore[valid-type,misc]
        """A volunteer's offer of time. Pseudonymous: no phone, ID number or address, ever."""

        pseudonym: Name  # v2: plain text

    class RegisterVolunteer(Message):
        """A community or social organisation registers a volunteer under a pseudonym."""

        TYPE: ClassVar[str] = "RegisterVolunteer"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pseudonym: Name
        home: Place

    class VolunteerRegistered(Message):
        """A volunteer exists, known to the log only by pseudonym and home district."""

        TYPE: ClassVar[str] = "VolunteerRegistered"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        pseudonym: Name
        home: Place

    class MakePledge(Message):
        """A volunteer pledges time and skills."""

        TYPE: ClassVar[str] = "MakePledge"
        VERSION: ClassVar[int] = 2
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class AmendPledge(Message):
        """A volunteer replaces their pledge (skills, availability, limits)."""

        TYPE: ClassVar[str] = "AmendPledge"
        VERSION: ClassVar[int] = 2
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class PledgeMade(Message):
        """A volunteer's pledge is on record and can be matched."""

        TYPE: ClassVar[str] = "PledgeMade"
        VERSION: ClassVar[int] = 2
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class PledgeAmended(Message):
        """The pledge now reads as `pledge`; proposals it no longer fits are released."""

        TYPE: ClassVar[str] = "PledgeAmended"
        VERSION: ClassVar[int] = 2
        volunteer_id: uuid.UUID
        pledge: PledgeSpec

    class SupplyListed(Message):
        TYPE: ClassVar[str] = "SupplyListed"
        VERSION: ClassVar[int] = 2
        supply: SupplyKind
        supply_id: uuid.UUID
        owner_partition: Partition
        version: Annotated[int, Field(ge=1)]
        active: bool
        pledge: PledgeSpec | None = None
        fund: FundSpec | None = None
        net_minor: Annotated[int, Field(ge=0)] = 0

    SupplyListed.__doc__ = SupplyListedV1.__doc__  # as published

    class PostNeed(Message):
        """A community asks for help. The need id is assigned by the gateway; a weekly need
        (`repeat`) is decided into one `NeedPosted` per occurrence, the first under `need_id` and
        the others under ids derived from it (`services.domain.needs.occurrences`)."""

        TYPE: ClassVar[str] = "PostNeed"
        VERSION: ClassVar[int] = 2
        need_id: uuid.UUID
        need: NeedSpec
        repeat: Recurrence | None = None

    class NeedPosted(Message):
        """The needs service accepted a need; it is open for matching."""

        TYPE: ClassVar[str] = "NeedPosted"
        VERSION: ClassVar[int] = 1
        need_id: uuid.UUID
        need: NeedSpec

    class NeedAmended(Message):
        """A need changed; `need` is the whole need as it now stands, `changed` names the fields."""

        TYPE: ClassVar[str] = "NeedAmended"
        VERSION: ClassVar[int] = 1
        need_id: uuid.UUID
        need: NeedSpec
        changed: Annotated[list[str], Field(min_length=1, max_length=10)]

    class SupplyRequested(Message):
        """The need's owner asks the supply's owner to hold `quantity` for this need.

        The need's owner has set that much of the need aside, so it is never filled twice; the
        request carries the need so the supply's owner can check skills, travel and earmarks."""

        TYPE: ClassVar[str] = "SupplyRequested"
        VERSION: ClassVar[int] = 1
        hold_id: uuid.UUID
        need_id: uuid.UUID
        need: NeedSpec
        need_zone: Annotated[str, Field(min_length=1, max_length=60)]
        from_partition: Partition
        supply: SupplyKind
        supply_id: uuid.UUID
        quantity: Quantity

    PostNeed.__doc__ = (  # as published, indented as a top-level class's docstring
        "A community asks for help. The need id is assigned by the gateway; a weekly need\n"
        "    (`repeat`) is decided into one `NeedPosted` per occurrence, the first under"
        " `need_id` and\n    the others under ids derived from it"
        " (`services.domain.needs.occurrences`)."
    )
    SupplyRequested.__doc__ = (  # as published, indented as a top-level class's docstring
        "The need's owner asks the supply's owner to hold `quantity` for this need.\n\n"
        "    The need's owner has set that much of the need aside, so it is never filled twice;"
        " the\n    request carries the need so the supply's owner can check skills, travel and"
        " earmarks."
    )

    return {
        f"{m.TYPE}.v{m.VERSION}": m
        for m in (
            RegisterVolunteer,
            VolunteerRegistered,
            MakePledge,
            AmendPledge,
            PledgeMade,
            PledgeAmended,
            SupplyListed,
            PostNeed,
            NeedPosted,
            NeedAmended,
            SupplyRequested,
        )
    }


BEFORE_SEALING = _before_sealing()
"""Superseded when pseudonyms and need descriptions were sealed (docs/privacy.md)."""


def _before_sealing_more() -> dict[str, type[Message]]:
    """The last versions that carried donor labels, donation notes and volunteers' reasons as
    plain text.

    Named as published: a JSON Schema's $defs keys are class names."""

    Reason = Annotated[Description, Field(min_length=1, max_length=500)]

    class DonationSpec(specs.DonationSpec):
        """Money given into a fund. The donor is a label the foundation chooses (may be 匿名)."""

        donor: Name  # v1: plain text
        note: Description = ""

    class ReceiveDonation(Message):
        """A foundation records a donation into one of its funds."""

        TYPE: ClassVar[str] = "ReceiveDonation"
        VERSION: ClassVar[int] = 1
        fund_id: uuid.UUID
        donation_id: uuid.UUID
        donation: DonationSpec

    class DonationReceived(Message):
        """Money arrived in a fund and is available under the fund's restrictions."""

        TYPE: ClassVar[str] = "DonationReceived"
        VERSION: ClassVar[int] = 1
        fund_id: uuid.UUID
        donation_id: uuid.UUID
        donation: DonationSpec

    class WithdrawPledge(Message):
        """A volunteer withdraws; shifts already accepted end only through the match lifecycle."""

        TYPE: ClassVar[str] = "WithdrawPledge"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        reason: Reason

    class PledgeWithdrawn(Message):
        """The volunteer is no longer offered for new matches."""

        TYPE: ClassVar[str] = "PledgeWithdrawn"
        VERSION: ClassVar[int] = 1
        volunteer_id: uuid.UUID
        reason: Reason

    class DeclineMatch(Message):
        """A volunteer declines a proposed shift; the matcher moves to the next candidate."""

        TYPE: ClassVar[str] = "DeclineMatch"
        VERSION: ClassVar[int] = 1
        match_id: uuid.UUID
        reason: Reason | None = None

    class MatchDeclined(Message):
        """The volunteer declined; the supply returns."""

        TYPE: ClassVar[str] = "MatchDeclined"
        VERSION: ClassVar[int] = 1
        match_id: uuid.UUID
        need_id: uuid.UUID
        reason: Reason | None = None

    return {
        f"{m.TYPE}.v{m.VERSION}": m
        for m in (
            ReceiveDonation,
            DonationReceived,
            WithdrawPledge,
            PledgeWithdrawn,
            DeclineMatch,
            MatchDeclined,
        )
    }


BEFORE_SEALING_MORE = _before_sealing_more()
"""Superseded when donor labels, donation notes and volunteers' reasons were sealed
(docs/privacy.md)."""

_CODED: dict[type[Any], type[Any]] = {
    specs.NeedSpec: EnumNeedSpec,
    specs.FundSpec: FundSpec,
    specs.PledgeSpec: EnumPledgeSpec,
}


def _enum_era(annotation: Any) -> Any:
    """`annotation` with every spec that now carries codes replaced by its enum-era model."""
    if annotation in _CODED:
        return _CODED[annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        args = tuple(_enum_era(a) for a in get_args(annotation))
        return Union[args]  # noqa: UP007 (built from a tuple)
    return annotation


def _before_codes(cls: type[Message], version: int) -> type[Message]:
    """`cls` as published at `version`, its last version before skills and categories became
    codes: the same fields, with the enum-era specs. Named and documented as published."""
    annotations: dict[str, Any] = {"VERSION": ClassVar[int]}
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": cls.__name__,
        "__doc__": cls.__doc__,
        "VERSION": version,
    }
    for name, field in cls.model_fields.items():
        old = _enum_era(field.annotation)
        if old is not field.annotation:
            annotations[name] = old
            if not field.is_required():
                namespace[name] = field.default
    namespace["__annotations__"] = annotations
    made: type[Message] = type(cls.__name__, (cls,), namespace)
    return made


def _before_fund_reserves() -> dict[str, type[Message]]:
    """The last versions without a fund's own reserve for urgent needs (matcher 0.4).

    Named and documented as published: a JSON Schema's $defs keys are class names."""

    class OpenFund(Message):
        """A foundation opens a fund with restrictions."""

        TYPE: ClassVar[str] = "OpenFund"
        VERSION: ClassVar[int] = 2
        fund_id: uuid.UUID
        fund: specs.FundSpec

    class FundOpened(Message):
        """The donations service opened a fund; it can now receive donations."""

        TYPE: ClassVar[str] = "FundOpened"
        VERSION: ClassVar[int] = 2
        fund_id: uuid.UUID
        fund: specs.FundSpec

    class SupplyListed(Message):
        TYPE: ClassVar[str] = "SupplyListed"
        VERSION: ClassVar[int] = 4
        supply: SupplyKind
        supply_id: uuid.UUID
        owner_partition: Partition
        version: Annotated[int, Field(ge=1)]
        active: bool
        pledge: specs.PledgeSpec | None = None
        fund: specs.FundSpec | None = None
        net_minor: Annotated[int, Field(ge=0)] = 0

    SupplyListed.__doc__ = SupplyListedV1.__doc__  # as published
    return {f"{m.TYPE}.v{m.VERSION}": m for m in (OpenFund, FundOpened, SupplyListed)}


BEFORE_FUND_RESERVES = _before_fund_reserves()
"""Superseded when each fund got its own reserve for urgent needs (`urgent_reserve_percent`
on the opening and on fund listings): each upcasts with a reserve of 0."""

BEFORE_CODES: dict[str, type[Message]] = {
    f"{cls.TYPE}.v{version}": _before_codes(cls, version)
    for cls, version in (
        (needs.PostNeed, 3),
        (needs.NeedPosted, 2),
        (needs.NeedAmended, 2),
        (BEFORE_FUND_RESERVES["OpenFund.v2"], 1),
        (BEFORE_FUND_RESERVES["FundOpened.v2"], 1),
        (volunteers.MakePledge, 3),
        (volunteers.AmendPledge, 3),
        (volunteers.PledgeMade, 3),
        (volunteers.PledgeAmended, 3),
        (BEFORE_FUND_RESERVES["SupplyListed.v4"], 3),
        (reservations.SupplyRequested, 2),
    )
}
"""Superseded when skills and categories became reference data (codes on the log, checked
against the lists by the gateway): each upcasts unchanged, its values being codes already."""

LEGACY: tuple[type[Message], ...] = (
    PostingRefusedV1,
    PostNeedV1,
    *_PLEDGES_V1.values(),
    *BEFORE_SEALING.values(),
    *BEFORE_SEALING_MORE.values(),
    *BEFORE_CODES.values(),
    *BEFORE_FUND_RESERVES.values(),
)
