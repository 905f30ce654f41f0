"""Funds and money: opened with earmarks, donations in and refunded, reserved for needs,
released, and disbursed. Amounts are integer minor units with an ISO 4217 currency."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import Field

from schemas.common import Description, Money
from schemas.message import Message
from schemas.specs import DonationSpec, FundSpec

Reason = Annotated[Description, Field(min_length=1, max_length=500)]

ReservePercent = Annotated[int, Field(ge=0, le=100)]
"""The share of a fund's net donations its foundation holds back for high and critical needs
(whole percent, 0 to 100): low and normal needs take only what the fund holds beyond it until
48 hours before their deadline (docs/matching.md, "Reserves for urgent needs")."""


class OpenFund(Message):
    """A foundation opens a fund with restrictions."""

    TYPE: ClassVar[str] = "OpenFund"
    # v3: the share held for urgent needs (`urgent_reserve_percent`, 0 when upcast)
    VERSION: ClassVar[int] = 3  # v2: categories are codes (reference data)
    fund_id: uuid.UUID
    fund: FundSpec
    urgent_reserve_percent: ReservePercent = 0


class ReceiveDonation(Message):
    """A foundation records a donation into one of its funds."""

    TYPE: ClassVar[str] = "ReceiveDonation"
    VERSION: ClassVar[int] = 2  # v2: donor label and note sealed (strings only when upcast from v1)
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    donation: DonationSpec


class RefundDonation(Message):
    """A foundation returns all or part of a donation to its donor."""

    TYPE: ClassVar[str] = "RefundDonation"
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    refund_id: uuid.UUID
    amount: Money
    reason: Reason


class FundOpened(Message):
    """The donations service opened a fund; it can now receive donations."""

    TYPE: ClassVar[str] = "FundOpened"
    # v3: the share held for urgent needs (`urgent_reserve_percent`, 0 when upcast)
    VERSION: ClassVar[int] = 3  # v2: categories are codes (reference data)
    fund_id: uuid.UUID
    fund: FundSpec
    urgent_reserve_percent: ReservePercent = 0


class SetFundReserve(Message):
    """A foundation changes the share of one of its funds held back for urgent needs.

    It applies to what the fund holds from then on: nothing already proposed is withdrawn."""

    TYPE: ClassVar[str] = "SetFundReserve"
    fund_id: uuid.UUID
    urgent_reserve_percent: ReservePercent


class FundReserveSet(Message):
    """The donations service changed the share of a fund held back for high and critical needs.

    Proposals already made keep their money; a lower share frees money for any need at once,
    a higher one holds back only what the fund has not yet promised."""

    TYPE: ClassVar[str] = "FundReserveSet"
    fund_id: uuid.UUID
    urgent_reserve_percent: ReservePercent


class DonationReceived(Message):
    """Money arrived in a fund and is available under the fund's restrictions."""

    TYPE: ClassVar[str] = "DonationReceived"
    VERSION: ClassVar[int] = 2  # v2: donor label and note sealed (strings only when upcast from v1)
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    donation: DonationSpec


class DonationRefunded(Message):
    """Money went back to a donor; never more than the donation and never reserved money."""

    TYPE: ClassVar[str] = "DonationRefunded"
    fund_id: uuid.UUID
    donation_id: uuid.UUID
    refund_id: uuid.UUID
    amount: Money
    reason: Reason


class FundsReserved(Message):
    """The fund's owner set money aside for a need under a proposed match."""

    TYPE: ClassVar[str] = "FundsReserved"
    fund_id: uuid.UUID
    reservation_id: uuid.UUID
    need_id: uuid.UUID
    match_id: uuid.UUID
    amount: Money


class ReservationReleased(Message):
    """Reserved money went back to available (declined, expired or cancelled)."""

    TYPE: ClassVar[str] = "ReservationReleased"
    fund_id: uuid.UUID
    reservation_id: uuid.UUID
    amount: Money
    reason: Reason


class FundsDisbursed(Message):
    """Reserved money was paid out for the need; the community confirmed receipt."""

    TYPE: ClassVar[str] = "FundsDisbursed"
    fund_id: uuid.UUID
    reservation_id: uuid.UUID
    need_id: uuid.UUID
    amount: Money
