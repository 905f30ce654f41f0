"""The catalogue: every command and event of the exchange, and the registry of wire types.

Commands are imperative (`PostNeed`), events past tense (`NeedPosted`). The definitions live in
modules named after their subject; this module gathers them so readers have one place to look.
"""

from __future__ import annotations

from schemas.checkpoints import CheckpointRecorded, KeyRotated
from schemas.clock import ClockTicked
from schemas.corrections import CorrectEvent, EventCorrected
from schemas.dead_letters import MessageDeadLettered
from schemas.funds import (
    DonationReceived,
    DonationRefunded,
    FundOpened,
    FundsDisbursed,
    FundsReserved,
    OpenFund,
    ReceiveDonation,
    RefundDonation,
    ReservationReleased,
)
from schemas.matches import (
    AcceptMatch,
    ConfirmMatch,
    DeclineMatch,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    NoShowRecorded,
    RecordNoShow,
    SupplyKind,
)
from schemas.message import Message
from schemas.needs import (
    AmendNeed,
    CancelNeed,
    NeedAmended,
    NeedAmendment,
    NeedCancelled,
    NeedExpired,
    NeedFulfilled,
    NeedPosted,
    PostNeed,
    Recurrence,
)
from schemas.organisations import OrganisationRegistered, OrgKind
from schemas.refusals import PostingRefused, Problem
from schemas.reservations import (
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
)
from schemas.volunteers import (
    AmendPledge,
    MakePledge,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    RegisterVolunteer,
    VolunteerRegistered,
    WithdrawPledge,
)

COMMANDS: tuple[type[Message], ...] = (
    RegisterVolunteer,
    PostNeed,
    AmendNeed,
    CancelNeed,
    OpenFund,
    ReceiveDonation,
    RefundDonation,
    MakePledge,
    AmendPledge,
    WithdrawPledge,
    AcceptMatch,
    DeclineMatch,
    ConfirmMatch,
    RecordNoShow,
    CorrectEvent,
)
"""What clients ask for (through the gateway); an intake service decides each."""

EVENTS: tuple[type[Message], ...] = (
    OrganisationRegistered,
    VolunteerRegistered,
    NeedPosted,
    NeedAmended,
    NeedCancelled,
    NeedExpired,
    NeedFulfilled,
    FundOpened,
    DonationReceived,
    DonationRefunded,
    FundsReserved,
    ReservationReleased,
    FundsDisbursed,
    PledgeMade,
    PledgeAmended,
    PledgeWithdrawn,
    MatchProposed,
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    MatchCompleted,
    MatchWithdrawn,
    NoShowRecorded,
    PostingRefused,
    EventCorrected,
    ClockTicked,
    MessageDeadLettered,
    SupplyListed,
    SupplyRequested,
    SupplyGranted,
    SupplyRefused,
    SupplyReleased,
    SupplyRevoked,
    CheckpointRecorded,
    KeyRotated,
)
"""Facts decided by the owning service."""

ALL_MESSAGES: tuple[type[Message], ...] = COMMANDS + EVENTS

__all__ = [
    "ALL_MESSAGES",
    "COMMANDS",
    "EVENTS",
    "AcceptMatch",
    "AmendNeed",
    "AmendPledge",
    "CancelNeed",
    "CheckpointRecorded",
    "ClockTicked",
    "ConfirmMatch",
    "CorrectEvent",
    "DeclineMatch",
    "DonationReceived",
    "DonationRefunded",
    "EventCorrected",
    "FundOpened",
    "FundsDisbursed",
    "FundsReserved",
    "KeyRotated",
    "MakePledge",
    "MatchAccepted",
    "MatchCompleted",
    "MatchDeclined",
    "MatchExpired",
    "MatchProposed",
    "MatchWithdrawn",
    "Message",
    "MessageDeadLettered",
    "NeedAmended",
    "NeedAmendment",
    "NeedCancelled",
    "NeedExpired",
    "NeedFulfilled",
    "NeedPosted",
    "NoShowRecorded",
    "OpenFund",
    "OrgKind",
    "OrganisationRegistered",
    "PledgeAmended",
    "PledgeMade",
    "PledgeWithdrawn",
    "PostNeed",
    "PostingRefused",
    "Problem",
    "ReceiveDonation",
    "RecordNoShow",
    "Recurrence",
    "RefundDonation",
    "RegisterVolunteer",
    "ReservationReleased",
    "SupplyGranted",
    "SupplyKind",
    "SupplyListed",
    "SupplyRefused",
    "SupplyReleased",
    "SupplyRequested",
    "SupplyRevoked",
    "VolunteerRegistered",
    "WithdrawPledge",
]
