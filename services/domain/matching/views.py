"""Compact records of what the policy reads from a need and from a pledge.

Why: a partition holds every need, volunteer and listing it has seen, and pickles them all into
each snapshot. The pydantic specs carry titles, descriptions, pseudonyms and a model object per
place and time window, which the policy never reads; and each fit test built sets from their
lists again. A view keeps only the fields decisions depend on, in plain slotted records and
tuples, with the derived values (skill sets, the shift's minutes and week) computed once.

A need's view also keeps its spec as JSON (`raw`): a request to another partition carries the
whole spec, rebuilt from those bytes, so the request is the same as one built from the original
model.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from schemas.common import NeedKind, Place, TimeWindow
from schemas.specs import NeedSpec, PledgeSpec, TravelRange
from services.domain.matching.weeks import local_week
from services.domain.needs import need_quantity

Window = tuple[datetime, datetime]
"""A half-open [start, end) interval, as a `TimeWindow` holds it."""

Slot = tuple[datetime, datetime, int, tuple[int, int]]
"""A shift held in a volunteer's calendar: start, end, whole minutes, and the Nanjing week of
its start (weekly limits count by it)."""


def minutes_of(start: datetime, end: datetime) -> int:
    """Whole minutes in [start, end), as `TimeWindow.minutes` counts them."""
    return int((end - start).total_seconds() // 60)


def time_window(window: Window) -> TimeWindow:
    """The wire model of a window (for the decisions that name a shift)."""
    return TimeWindow(start=window[0], end=window[1])


def _name(value: str | None) -> str | None:
    # District, street and community names repeat across thousands of needs and pledges.
    return None if value is None else sys.intern(value)


@dataclass(slots=True)
class Spot:
    """A place as the policy reads it: names for the travel ranges, coordinates for distance."""

    district: str
    street: str | None
    community: str | None
    latitude: float | None
    longitude: float | None

    @classmethod
    def of(cls, place: Place) -> Spot:
        return cls(
            sys.intern(place.district),
            _name(place.street),
            _name(place.community),
            place.latitude,
            place.longitude,
        )


_SKILLS: dict[frozenset[str], frozenset[str]] = {}


def _skills(values: list[str]) -> frozenset[str]:
    """One shared set per combination of skills (a city has few combinations)."""
    key = frozenset(values)
    return _SKILLS.setdefault(key, key) if len(_SKILLS) < 4096 else key


@dataclass(slots=True)
class NeedView:
    """What decisions read from a need's spec."""

    kind: NeedKind
    category: str
    place: Spot
    urgency: int
    """The urgency's rank: larger is more urgent."""
    deadline: datetime
    deadline_week: tuple[int, int]
    shift: Window | None
    slot: Slot | None
    required: frozenset[str]
    currency: str | None
    """The currency of the money that would meet the need (None: money cannot)."""
    quantity: int
    """Volunteers, minor units of money, or goods units wanted (`need_quantity`)."""
    raw: bytes
    """The spec as JSON, to rebuild it for a request to another partition."""

    @classmethod
    def of(cls, spec: NeedSpec) -> NeedView:
        shift: Window | None = None
        slot: Slot | None = None
        if spec.shift is not None:
            start, end = spec.shift.start, spec.shift.end
            shift = (start, end)
            slot = (start, end, minutes_of(start, end), local_week(start))
        money = spec.money_wanted
        return cls(
            spec.kind,
            spec.category,
            Spot.of(spec.place),
            spec.urgency.rank,
            spec.deadline,
            local_week(spec.deadline),
            shift,
            slot,
            _skills(list(spec.required_skills)),
            _name(None if money is None else money.currency),
            need_quantity(spec)[0],
            spec.model_dump_json().encode(),
        )

    def spec(self) -> NeedSpec:
        """The full spec, as posted (or last amended)."""
        return NeedSpec.model_validate_json(self.raw)


@dataclass(slots=True)
class PledgeView:
    """What decisions read from a volunteer's pledge."""

    skills: frozenset[str]
    home: Spot
    travel: TravelRange
    travel_km: float | None
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    """When the volunteer is available: windows sorted by start (a pledge's windows never
    overlap, so at most one can hold a given instant)."""
    limit: int
    """The weekly limit, in minutes."""
    across: bool
    """Whether they may serve needs outside their home district (`travels_across_districts`)."""

    @classmethod
    def of(cls, spec: PledgeSpec) -> PledgeView:
        return cls(
            _skills(list(spec.skills)),
            Spot.of(spec.home),
            spec.travel,
            spec.travel_km,
            *_windows(spec),
            spec.weekly_hour_limit * 60,
            spec.travel is TravelRange.ANYWHERE or spec.travel_km is not None,
        )

    def available(self, start: datetime, end: datetime) -> bool:
        """Whether one availability window covers [start, end). Only the last window starting
        at or before `start` can: every earlier one ends by the time that one starts."""
        i = bisect_right(self.starts, start) - 1
        return i >= 0 and end <= self.ends[i]


def _windows(spec: PledgeSpec) -> tuple[tuple[datetime, ...], tuple[datetime, ...]]:
    windows = sorted((w.start, w.end) for w in spec.availability)
    return tuple(w[0] for w in windows), tuple(w[1] for w in windows)
