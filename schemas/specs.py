"""What clients post: the body of a need, a fund, a donation and a pledge.

These are the HTTP request bodies and also the heart of the commands and events that carry them,
so one set of rules validates a posting wherever it is seen.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Self

from pydantic import Field, model_validator

from schemas.common import (
    MAX_AMOUNT_MINOR,
    CategoryCode,
    Description,
    Frozen,
    Moment,
    Money,
    Name,
    NeedKind,
    Place,
    PlaceName,
    SkillCode,
    TimeWindow,
    Urgency,
)
from schemas.sealed import Sealed, SealedDonation

SkillSet = Annotated[list[SkillCode], Field(max_length=12)]


def _unique(items: list[object], field: str) -> None:
    if len(set(items)) != len(items):
        raise ValueError(f"{field} must not repeat an entry")


WANTED: dict[NeedKind, frozenset[str]] = {
    NeedKind.VOLUNTEER_HOURS: frozenset({"shift", "volunteers_needed"}),
    NeedKind.MONEY: frozenset({"amount"}),
    NeedKind.GOODS: frozenset({"quantity", "unit"}),
}
"""The fields each kind of need must carry."""

ALLOWED: dict[NeedKind, frozenset[str]] = {
    NeedKind.VOLUNTEER_HOURS: frozenset({"shift", "volunteers_needed", "required_skills"}),
    NeedKind.MONEY: frozenset({"amount"}),
    NeedKind.GOODS: frozenset({"quantity", "unit", "unit_cost"}),
}
"""The kind-specific fields each kind of need may carry."""

KIND_FIELDS = ("shift", "volunteers_needed", "required_skills", "amount", "quantity", "unit",
               "unit_cost")  # fmt: skip


class NeedSpec(Frozen):
    """A community's need: volunteer hours for a shift, an amount of money, or goods.

    Carries how many people are served, never who they are."""

    title: Name
    description: Sealed | Description = ""
    """Free text that may describe beneficiaries: sealed under the need's key (posted from
    PostNeed v3 on), so that forgetting the need forgets it; plain text only in needs posted
    earlier, and the empty string when there is none (docs/privacy.md)."""
    kind: NeedKind
    category: CategoryCode
    place: Place
    urgency: Urgency = Urgency.NORMAL
    deadline: Moment
    people_served: Annotated[int, Field(ge=0, le=100_000)] = 0
    # volunteer_hours
    shift: TimeWindow | None = None
    volunteers_needed: Annotated[int, Field(ge=1, le=500)] | None = None
    required_skills: SkillSet = Field(default_factory=list)
    # money
    amount: Money | None = None
    # goods
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    unit: Annotated[Name, Field(max_length=20)] | None = None
    unit_cost: Money | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        _unique(list(self.required_skills), "required_skills")
        present = {f for f in KIND_FIELDS if getattr(self, f) not in (None, [])}
        missing = WANTED[self.kind] - present
        if missing:
            raise ValueError(f"a {self.kind.value} need requires {', '.join(sorted(missing))}")
        extra = present - ALLOWED[self.kind]
        if extra:
            raise ValueError(f"a {self.kind.value} need must not carry {', '.join(sorted(extra))}")
        if self.shift is not None and self.shift.end > self.deadline:
            raise ValueError("shift must end by the deadline")
        if (
            self.unit_cost is not None
            and self.quantity is not None
            and self.unit_cost.amount_minor * self.quantity > MAX_AMOUNT_MINOR
        ):
            raise ValueError(
                f"quantity × unit_cost must not exceed {MAX_AMOUNT_MINOR} minor units"
                " (the largest amount the exchange carries)"
            )
        return self

    @property
    def money_wanted(self) -> Money | None:
        """The money that would meet this need: its amount, or the cost of its goods."""
        if self.amount is not None:
            return self.amount
        if self.unit_cost is not None and self.quantity is not None:
            return Money(
                amount_minor=self.unit_cost.amount_minor * self.quantity,
                currency=self.unit_cost.currency,
            )
        return None


class FundSpec(Frozen):
    """A fund a foundation opens, with the restrictions (earmarks) its money carries for life."""

    name: Name
    foundation: Name
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"
    categories: Annotated[list[CategoryCode], Field(max_length=20)] = Field(default_factory=list)
    districts: Annotated[list[PlaceName], Field(max_length=20)] = Field(default_factory=list)
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    cap_per_need: Money | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique(list(self.categories), "categories")
        _unique(list(self.districts), "districts")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.cap_per_need is not None and self.cap_per_need.currency != self.currency:
            raise ValueError("cap_per_need must be in the fund's currency")
        return self

    def allows(self, category: str, district: str, at: datetime) -> bool:
        """Whether this fund's earmarks allow paying for a need of this category and place."""
        if self.categories and category not in self.categories:
            return False
        if self.districts and district not in self.districts:
            return False
        if self.valid_from and at < self.valid_from:
            return False
        return not (self.valid_until and at >= self.valid_until)


class DonationSpec(Frozen):
    """Money given into a fund. The donor is a label the foundation chooses (may be 匿名)."""

    donor: SealedDonation | Name
    """Sealed under the donation's key (`donation:<id>`) from ReceiveDonation v2 on, unless it
    is a registered organisation's name when posted (public: kept plain, so the disclosure
    report can name it); plain text in donations recorded earlier (docs/privacy.md)."""
    amount: Money
    note: SealedDonation | Description = ""
    """Sealed under the donation's key from ReceiveDonation v2 on (the empty string when there
    is none); plain text in donations recorded earlier."""


class TravelRange(StrEnum):
    """How far a volunteer will go from home: their own community (the grid level of
    网格 governance), street, district, or anywhere in the city."""

    SAME_COMMUNITY = "same_community"
    SAME_STREET = "same_street"
    SAME_DISTRICT = "same_district"
    ANYWHERE = "anywhere"


class PledgeSpec(Frozen):
    """A volunteer's offer of time. Pseudonymous: no phone, ID number or address, ever."""

    pseudonym: Sealed | Name
    """Sealed under the volunteer's key from MakePledge v3 on, so that forgetting the volunteer
    forgets it; plain text only in pledges made earlier (docs/privacy.md)."""
    home: Place
    skills: Annotated[SkillSet, Field(min_length=1)]
    availability: Annotated[list[TimeWindow], Field(min_length=1, max_length=50)]
    weekly_hour_limit: Annotated[int, Field(ge=1, le=60)] = 8
    travel: TravelRange = TravelRange.SAME_DISTRICT
    travel_km: Annotated[float, Field(gt=0, le=100)] | None = None
    """Straight-line distance the volunteer will go, judged when both their home and the
    need's place carry coordinates; otherwise `travel` decides. Needs `home` coordinates."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique(list(self.skills), "skills")
        if self.travel_km is not None and (
            self.home.latitude is None or self.home.longitude is None
        ):
            raise ValueError("travel_km needs home.latitude and home.longitude")
        windows = sorted(self.availability, key=lambda w: w.start)
        for a, b in pairwise(windows):
            if a.overlaps(b):
                raise ValueError("availability windows must not overlap")
        return self
