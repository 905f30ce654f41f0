"""The topic registry: every topic, its key, its messages, its single writer, its partitions.

Services take topic names from here and nowhere else; the AsyncAPI export is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.messages import (
    DonationReceived,
    FundOpened,
    MakePledge,
    MatchProposed,
    Message,
    NeedPosted,
    OpenFund,
    PledgeMade,
    PostingRefused,
    PostNeed,
    ReceiveDonation,
)


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the exchange. `owner` is the only service that may write to it."""

    name: str
    key: str
    messages: tuple[type[Message], ...]
    owner: str
    partitions: int
    description: str
    retention_ms: int = -1  # keep forever: auditors replay from the beginning

    @property
    def dead_letter(self) -> str:
        """Where consumers of this topic move messages they cannot decode, with the reason."""
        return f"{self.name}.dlq"


NEEDS_POSTINGS = TopicSpec(
    "needs.postings",
    "need_id",
    (PostNeed,),
    "gateway",
    4,
    "Needs accepted by the gateway, durable in PostgreSQL, awaiting the needs service.",
)
DONATIONS_POSTINGS = TopicSpec(
    "donations.postings",
    "fund_id",
    (OpenFund, ReceiveDonation),
    "gateway",
    4,
    "Fund openings and donations accepted by the gateway, awaiting the donations service.",
)
PLEDGES_POSTINGS = TopicSpec(
    "pledges.postings",
    "volunteer_id",
    (MakePledge,),
    "gateway",
    4,
    "Volunteer pledges accepted by the gateway, awaiting the pledges service.",
)
NEEDS_EVENTS = TopicSpec(
    "needs.events",
    "need_id",
    (NeedPosted, PostingRefused),
    "intake-needs",
    4,
    "Decided facts about needs.",
)
FUNDS_EVENTS = TopicSpec(
    "funds.events",
    "fund_id",
    (FundOpened, DonationReceived, PostingRefused),
    "intake-donations",
    4,
    "Decided facts about funds and donations.",
)
VOLUNTEERS_EVENTS = TopicSpec(
    "volunteers.events",
    "volunteer_id",
    (PledgeMade, PostingRefused),
    "intake-pledges",
    4,
    "Decided facts about volunteers' pledges.",
)
MATCHER_INPUTS = TopicSpec(
    "matcher.inputs",
    "zone",
    (NeedPosted, FundOpened, DonationReceived, PledgeMade),
    "matcher",
    4,
    "Supply and demand events re-keyed by matching zone: the matcher's ordered, logged input.",
)
MATCHES_EVENTS = TopicSpec(
    "matches.events",
    "need_id",
    (MatchProposed,),
    "matcher",
    4,
    "Matching decisions, each a pure function of matcher.inputs in logged order.",
)

TOPICS: tuple[TopicSpec, ...] = (
    NEEDS_POSTINGS,
    DONATIONS_POSTINGS,
    PLEDGES_POSTINGS,
    NEEDS_EVENTS,
    FUNDS_EVENTS,
    VOLUNTEERS_EVENTS,
    MATCHER_INPUTS,
    MATCHES_EVENTS,
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def all_topic_names(with_dead_letters: bool = True) -> list[str]:
    """Every topic the exchange needs created, dead-letter topics included by default."""
    names = [t.name for t in TOPICS]
    if with_dead_letters:
        names += [t.dead_letter for t in TOPICS]
    return names


def partitions_of(name: str) -> int:
    """Partition count of a registered topic or of its dead-letter topic."""
    base = name.removesuffix(".dlq")
    return BY_NAME[base].partitions if base == name else 1
