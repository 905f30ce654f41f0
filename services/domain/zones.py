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

import uuid
from collections.abc import Iterable

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


def volunteer_reach(spec: PledgeSpec) -> list[str] | None:
    """Districts whose needs this volunteer could serve (None: anywhere in the city)."""
    if spec.travel is TravelRange.ANYWHERE:
        return None
    return [spec.home.district]


def fund_reach(spec: FundSpec) -> list[str] | None:
    """Districts whose needs this fund may pay for (None: any district)."""
    return list(spec.districts) or None
