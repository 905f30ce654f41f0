"""Who owns what in matching: zones, and the partition of `matcher.inputs` that owns each.

A zone is the name under which something is owned: a need by the district where it was
posted, a volunteer by the district of their first pledge, a fund by its one district, or by
its own id when it may pay in several districts (so city-wide funds spread over partitions
instead of piling onto one). A zone's owner is the partition Kafka's default partitioner gives
the zone's name, so every writer (router, matcher, restorer) agrees without asking anyone.

Ownership is sticky: a need whose place is amended, or a volunteer who moves, stays with the
partition that first owned it, so no balance or calendar ever has two deciders.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from typing import Protocol

from kafka.partitioner.default import murmur2

from schemas.specs import FundSpec, NeedSpec, PledgeSpec, TravelRange


def partition_of(zone: str, partitions: int) -> int:
    """The partition that owns `zone` (murmur2 of its UTF-8 name, as the Java client does)."""
    return int(murmur2(zone.encode()) & 0x7FFFFFFF) % partitions


def need_zone(spec: NeedSpec) -> str:
    """A need is owned where it is."""
    return spec.place.district


def volunteer_zone(spec: PledgeSpec) -> str:
    """A volunteer is owned where they live (at their first pledge)."""
    return spec.home.district


def fund_zone(fund_id: uuid.UUID, spec: FundSpec) -> str:
    """A fund for one district is owned there, next to the needs it may pay for; any other
    fund by its own id."""
    if len(spec.districts) == 1:
        return spec.districts[0]
    return f"fund:{fund_id}"


def clock_zone(partition: int) -> str:
    """The name under which a partition's copy of a clock tick travels."""
    return f"clock:{partition}"


def reachable_partitions(zones: Iterable[str] | None, partitions: int) -> set[int]:
    """Partitions holding needs in `zones`; None means anywhere (every partition)."""
    if zones is None:
        return set(range(partitions))
    return {partition_of(z, partitions) for z in zones}


def travels_across_districts(spec: PledgeSpec) -> bool:
    """Whether the volunteer may serve needs outside their home district: they travel
    anywhere, or by distance (which district lines do not bound)."""
    return spec.travel is TravelRange.ANYWHERE or spec.travel_km is not None


def volunteer_reach(spec: PledgeSpec) -> list[str] | None:
    """Districts whose needs this volunteer could serve (None: anywhere in the city)."""
    if travels_across_districts(spec):
        return None
    return [spec.home.district]


EARTH_KM = 6371.0088


class Located(Protocol):
    """Anything with optional coordinates: a `Place`, or the matcher's compact copy of one."""

    @property
    def latitude(self) -> float | None: ...

    @property
    def longitude(self) -> float | None: ...


def distance_km(a: Located, b: Located) -> float | None:
    """Great-circle distance between two places, or None unless both carry coordinates."""
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    la1, lo1, la2, lo2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def fund_reach(spec: FundSpec) -> list[str] | None:
    """Districts whose needs this fund may pay for (None: any district)."""
    return list(spec.districts) or None
