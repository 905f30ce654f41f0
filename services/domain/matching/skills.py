"""Supply filed by skill and by day as well as by where it serves, so that a need looks only at
those who have one of its required skills and are available on the day its shift starts (on
the generated city: one skill of eight, two or three days of seven, so a few per cent of the
district's volunteers instead of all of them).

A bucket is keyed by (zone, skill, day): the zone is a district, or None for those who travel
across districts; the skill is "" for every item (needs that require none); the day is the UTC
date (as an ordinal) of each day an availability window touches, or None for an item with a
window longer than `LONG_DAYS` (filed once, and looked at for every day). A bucket holds exactly
the members of the matching district (or "anywhere") index filed with that key. The keys an
item was filed with are kept on the item (`filed`), so it leaves the same buckets even after
its pledge changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Protocol, TypeVar

from services.domain.matching.views import PledgeView

Zone = str | None
"""A district, or None for "anywhere"."""

Filing = tuple[tuple[str, int | None], ...]
"""The (skill, day) keys an item is filed under in its zone."""

LONG_DAYS = 31
"""A window touching more days than this files its volunteer under "any day" instead."""

EVERY_SKILL = ""


class Filed(Protocol):
    filed: Filing


T = TypeVar("T", bound=Filed)

Buckets = dict[tuple[Zone, str, int | None], dict[uuid.UUID, T]]


def day_of(at: datetime) -> int:
    """The UTC date of `at`, as an ordinal."""
    return at.astimezone(UTC).toordinal()


def filing(pledge: PledgeView) -> Filing:
    """Where a pledge is filed: each of its skills (and "") on each day it is available."""
    days: set[int | None] = set()
    for start, end in zip(pledge.starts, pledge.ends, strict=True):
        first, last = day_of(start), day_of(end - timedelta(microseconds=1))
        if last - first + 1 > LONG_DAYS:
            days = {None}
            break
        days.update(range(first, last + 1))
    skills = sorted({EVERY_SKILL, *pledge.skills})
    keys = tuple(_key(skill, day) for skill in skills for day in sorted(days, key=_day_order))
    return _FILINGS.setdefault(keys, keys) if len(_FILINGS) < 65536 else keys


_KEYS: dict[tuple[str, int | None], tuple[str, int | None]] = {}
_FILINGS: dict[Filing, Filing] = {}
"""One shared copy of each key and of each filing: a city has few skills and days, and every
volunteer and listing keeps its filing."""


def _key(skill: str, day: int | None) -> tuple[str, int | None]:
    key = (skill, day)
    return _KEYS.setdefault(key, key) if len(_KEYS) < 65536 else key


def _day_order(day: int | None) -> int:
    return -1 if day is None else day


def file_under(buckets: Buckets[T], zone: Zone, key: uuid.UUID, item: T) -> None:
    """Put `item` in the buckets of each (skill, day) it was filed with."""
    for skill, day in item.filed:
        buckets.setdefault((zone, skill, day), {})[key] = item


def unfile(buckets: Buckets[T], zone: Zone, key: uuid.UUID, item: T) -> None:
    """Take `item` (that very object) out of the buckets it was filed in."""
    for skill, day in item.filed:
        bucket = buckets.get((zone, skill, day))
        if bucket is not None and bucket.get(key) is item:
            del bucket[key]


def narrowest(
    buckets: Buckets[T], zone: Zone, required: Iterable[str], start: datetime
) -> Iterable[T]:
    """A superset of the zone's items that have every required skill and may be available at
    `start`: the smallest (skill, day) bucket of one required skill, with that skill's "any
    day" bucket. An item is in at most one of the two."""
    day = day_of(start)
    best: tuple[dict[uuid.UUID, T], dict[uuid.UUID, T]] | None = None
    size = 0
    for skill in required or (EVERY_SKILL,):
        on_day = buckets.get((zone, skill, day), {})
        any_day = buckets.get((zone, skill, None), {})
        if best is None or len(on_day) + len(any_day) < size:
            best, size = (on_day, any_day), len(on_day) + len(any_day)
    if best is None:
        return ()
    return chain(best[0].values(), best[1].values())
