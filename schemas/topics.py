"""The topic registry: every topic, its key, its messages, its single writer, its partitions.

Services take topic names from here and nowhere else; the AsyncAPI export is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.messages import (
    AcceptMatch,
    AmendNeed,
    AmendPledge,
    CancelNeed,
    CheckpointRecorded,
    ClockTicked,
    ConfirmMatch,
    CorrectEvent,
    DeclineMatch,
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    FundOpened,
    FundReserveSet,
    FundsDisbursed,
    FundsReserved,
    KeyRotated,
    MakePledge,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    MessageDeadLettered,
    NeedAmended,
    NeedCancelled,
    NeedExpired,
    NeedFulfilled,
    NeedPosted,
    NoShowRecorded,
    OpenFund,
    OrganisationRegistered,
    OrganisationReinstated,
    OrganisationSuspended,
    OrganisationTokenRotated,
    OrganisationTokensRevoked,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    PostingRefused,
    PostNeed,
    ReceiveDonation,
    RecordNoShow,
    ReferenceTermDefined,
    ReferenceTermRetired,
    RefundDonation,
    RegisterVolunteer,
    ReservationReleased,
    SetFundReserve,
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
    VolunteerRegistered,
    WithdrawPledge,
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
    consumer: str | None = None
    """The service that decides on this topic's messages and parks the unreadable ones."""

    @property
    def dead_letter(self) -> str:
        """Where consumers of this topic move messages they cannot decode, with the reason."""
        return f"{self.name}.dlq"

    def dead_letter_spec(self) -> TopicSpec:
        """The registry entry of this topic's dead-letter topic."""
        return TopicSpec(
            self.dead_letter,
            f"{self.key} (the original key)",
            (MessageDeadLettered,),
            self.consumer or "ledger",
            1,
            f"Messages of {self.name} that could not be decoded or validated, with the reason.",
        )


NEEDS_POSTINGS = TopicSpec(
    "needs.postings",
    "need_id",
    (PostNeed, AmendNeed, CancelNeed, CorrectEvent),
    "gateway",
    4,
    "Needs postings accepted by the gateway, durable in PostgreSQL, awaiting the needs service.",
    consumer="intake-needs",
)
DONATIONS_POSTINGS = TopicSpec(
    "donations.postings",
    "fund_id",
    (OpenFund, SetFundReserve, ReceiveDonation, RefundDonation, CorrectEvent),
    "gateway",
    4,
    "Fund and donation postings accepted by the gateway, awaiting the donations service.",
    consumer="intake-donations",
)
PLEDGES_POSTINGS = TopicSpec(
    "pledges.postings",
    "volunteer_id",
    (RegisterVolunteer, MakePledge, AmendPledge, WithdrawPledge, CorrectEvent),
    "gateway",
    4,
    "Volunteer postings accepted by the gateway, awaiting the pledges service.",
    consumer="intake-pledges",
)
MATCHES_POSTINGS = TopicSpec(
    "matches.postings",
    "match_id",
    (AcceptMatch, DeclineMatch, ConfirmMatch, RecordNoShow),
    "gateway",
    4,
    "Volunteers' answers to proposals and communities' confirmations, awaiting the matcher.",
    consumer="matcher",
)
ORGANISATIONS_EVENTS = TopicSpec(
    "organisations.events",
    "org_id",
    (
        OrganisationRegistered,
        OrganisationSuspended,
        OrganisationReinstated,
        OrganisationTokenRotated,
        OrganisationTokensRevoked,
        EventCorrected,
    ),
    "gateway",
    1,
    "Registered organisations (foundations, communities, street offices, social "
    "organisations, auditors), and what the operator did to them since.",
)
REFERENCE_EVENTS = TopicSpec(
    "reference.events",
    "kind:code",
    (ReferenceTermDefined, ReferenceTermRetired, EventCorrected),
    "gateway",
    1,
    "The skills and need categories postings may name: each term's definition (code, zh/en "
    "labels, district or the whole city) and retirement (schemas/reference.py).",
)
NEEDS_EVENTS = TopicSpec(
    "needs.events",
    "need_id",
    (
        NeedPosted,
        NeedAmended,
        NeedCancelled,
        NeedExpired,
        NeedFulfilled,
        PostingRefused,
        EventCorrected,
    ),
    "intake-needs",
    4,
    "Decided facts about needs.",
    consumer="matcher",
)
FUNDS_EVENTS = TopicSpec(
    "funds.events",
    "fund_id",
    (
        FundOpened,
        FundReserveSet,
        DonationReceived,
        DonationRefunded,
        FundsReserved,
        ReservationReleased,
        FundsDisbursed,
        PostingRefused,
        EventCorrected,
    ),
    "intake-donations",
    4,
    "Decided facts about funds and the money in them.",
    consumer="matcher",
)
VOLUNTEERS_EVENTS = TopicSpec(
    "volunteers.events",
    "volunteer_id",
    (
        VolunteerRegistered,
        PledgeMade,
        PledgeAmended,
        PledgeWithdrawn,
        PostingRefused,
        EventCorrected,
    ),
    "intake-pledges",
    4,
    "Decided facts about volunteers and their pledges.",
    consumer="matcher",
)
CLOCK_TICKS = TopicSpec(
    "clock.ticks",
    "zone",
    (ClockTicked,),
    "matcher",
    1,
    "Time as an input: ticks (written by the matcher's clock) that drive expiry and deadlines, "
    "so a replay decides exactly as the live run did.",
    consumer="matcher",
)
MATCHER_INPUTS = TopicSpec(
    "matcher.inputs",
    "zone",
    (
        NeedPosted,
        NeedAmended,
        NeedCancelled,
        FundOpened,
        FundReserveSet,
        DonationReceived,
        DonationRefunded,
        PledgeMade,
        PledgeAmended,
        PledgeWithdrawn,
        AcceptMatch,
        DeclineMatch,
        ConfirmMatch,
        RecordNoShow,
        ClockTicked,
        SupplyListed,
        SupplyRequested,
        SupplyGranted,
        SupplyRefused,
        SupplyReleased,
        SupplyRevoked,
    ),
    "matcher",
    4,
    "Supply, demand and answers to proposals routed to the partition that owns them, and the "
    "request/reply steps between partitions: the matcher's ordered, logged input.",
    consumer="matcher",
)
MATCHES_EVENTS = TopicSpec(
    "matches.events",
    "need_id",
    (
        MatchProposed,
        MatchAccepted,
        MatchDeclined,
        MatchExpired,
        MatchCompleted,
        MatchWithdrawn,
        NoShowRecorded,
        PostingRefused,
    ),
    "matcher",
    4,
    "Matching decisions, each a pure function of matcher.inputs in logged order.",
)
LEDGER_CHECKPOINTS = TopicSpec(
    "ledger.checkpoints",
    "origin",
    (CheckpointRecorded, KeyRotated),
    "ledger",
    1,
    "Signed Merkle tree heads of the archive (docs/audit.md): keep one, and you can later check "
    "that the archive you are shown extends it. Also the signing key's hand-overs (KeyRotated).",
)

TOPICS: tuple[TopicSpec, ...] = (
    NEEDS_POSTINGS,
    DONATIONS_POSTINGS,
    PLEDGES_POSTINGS,
    MATCHES_POSTINGS,
    ORGANISATIONS_EVENTS,
    REFERENCE_EVENTS,
    NEEDS_EVENTS,
    FUNDS_EVENTS,
    VOLUNTEERS_EVENTS,
    CLOCK_TICKS,
    MATCHER_INPUTS,
    MATCHES_EVENTS,
    LEDGER_CHECKPOINTS,
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}
"""The main topics by name (dead-letter topics are derived from them)."""


DEAD_LETTER_TOPICS: tuple[TopicSpec, ...] = tuple(t.dead_letter_spec() for t in TOPICS)

ALL_TOPICS: tuple[TopicSpec, ...] = TOPICS + DEAD_LETTER_TOPICS


def all_topic_names(with_dead_letters: bool = True) -> list[str]:
    """Every topic the exchange needs created, dead-letter topics included by default."""
    return [t.name for t in (ALL_TOPICS if with_dead_letters else TOPICS)]


def partitions_of(name: str) -> int:
    """Partition count of a registered topic or of its dead-letter topic."""
    base = name.removesuffix(".dlq")
    return BY_NAME[base].partitions if base == name else 1
