"""Supply filed by skill as well as by where it serves, so that a need looks only at those who
have one of its required skills (a need requires one skill of eight on the generated city: a
quarter of the volunteers instead of all of them).

A bucket is keyed by (district, skill), or (None, skill) for those who travel across districts,
and holds exactly the members of the matching district (or "anywhere") index that were filed
with that skill. The skills an item was filed with are kept on the item (`filed`), so it leaves
the same buckets even after its pledge changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

Zone = str | None
"""A district, or None for "anywhere"."""


class Filed(Protocol):
    filed: frozenset[str]


T = TypeVar("T", bound=Filed)

Buckets = dict[tuple[Zone, str], dict[uuid.UUID, T]]


def file_under(buckets: Buckets[T], zone: Zone, key: uuid.UUID, item: T) -> None:
    """Put `item` in the buckets of each skill it was filed with."""
    for skill in item.filed:
        buckets.setdefault((zone, skill), {})[key] = item


def unfile(buckets: Buckets[T], zone: Zone, key: uuid.UUID, item: T) -> None:
    """Take `item` (that very object) out of the buckets it was filed in."""
    for skill in item.filed:
        bucket = buckets.get((zone, skill))
        if bucket is not None and bucket.get(key) is item:
            del bucket[key]


def narrowest(
    buckets: Buckets[T], zone: Zone, required: Iterable[str], everyone: Mapping[uuid.UUID, T]
) -> Iterable[T]:
    """A superset of the zone's items that have every required skill: the smallest bucket of
    one of them (all of the zone when nothing is required)."""
    best: Mapping[uuid.UUID, T] | None = None
    for skill in required:
        bucket = buckets.get((zone, skill))
        if bucket is None:
            return ()
        if best is None or len(bucket) < len(best):
            best = bucket
    return (everyone if best is None else best).values()
