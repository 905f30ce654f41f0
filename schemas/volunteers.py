"""Volunteers: registered pseudonymously by a community or social organisation, then pledging,
amending and withdrawing time and skills. No phone, ID number or address ever enters the log."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import Field

from schemas.common import Description, Name, Place
from schemas.message import Message
from schemas.sealed import Sealed
from schemas.specs import PledgeSpec

Reason = Annotated[Description, Field(min_length=1, max_length=500)]


class RegisterVolunteer(Message):
    """A community or social organisation registers a volunteer under a pseudonym, sealed under
    the volunteer's own key (v2) so that it can be forgotten."""

    TYPE: ClassVar[str] = "RegisterVolunteer"
    VERSION: ClassVar[int] = 2  # v2: the pseudonym is sealed (a string only when upcast from v1)
    volunteer_id: uuid.UUID
    pseudonym: Sealed | Name
    home: Place


class MakePledge(Message):
    """A volunteer pledges time and skills."""

    TYPE: ClassVar[str] = "MakePledge"
    # v4: skills are codes (reference data)
    VERSION: ClassVar[int] = 4  # v3: the pseudonym is sealed; v2: travel by community or distance
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


class AmendPledge(Message):
    """A volunteer replaces their pledge (skills, availability, limits)."""

    TYPE: ClassVar[str] = "AmendPledge"
    # v4: skills are codes (reference data)
    VERSION: ClassVar[int] = 4  # v3: the pseudonym is sealed; v2: travel by community or distance
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


class WithdrawPledge(Message):
    """A volunteer withdraws; shifts already accepted end only through the match lifecycle."""

    TYPE: ClassVar[str] = "WithdrawPledge"
    VERSION: ClassVar[int] = 2  # v2: the reason is sealed (a string only when upcast from v1)
    volunteer_id: uuid.UUID
    reason: Sealed | Reason
    """Sealed under the volunteer's key, so that forgetting the volunteer forgets it."""


class VolunteerRegistered(Message):
    """A volunteer exists, known to the log only by pseudonym (sealed from v2 on) and home
    district."""

    TYPE: ClassVar[str] = "VolunteerRegistered"
    VERSION: ClassVar[int] = 2  # v2: the pseudonym is sealed (a string only when upcast from v1)
    volunteer_id: uuid.UUID
    pseudonym: Sealed | Name
    home: Place


class PledgeMade(Message):
    """A volunteer's pledge is on record and can be matched."""

    TYPE: ClassVar[str] = "PledgeMade"
    # v4: skills are codes (reference data)
    VERSION: ClassVar[int] = 4  # v3: the pseudonym is sealed; v2: travel by community or distance
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


class PledgeAmended(Message):
    """The pledge now reads as `pledge`; proposals it no longer fits are released."""

    TYPE: ClassVar[str] = "PledgeAmended"
    # v4: skills are codes (reference data)
    VERSION: ClassVar[int] = 4  # v3: the pseudonym is sealed; v2: travel by community or distance
    volunteer_id: uuid.UUID
    pledge: PledgeSpec


class PledgeWithdrawn(Message):
    """The volunteer is no longer offered for new matches."""

    TYPE: ClassVar[str] = "PledgeWithdrawn"
    VERSION: ClassVar[int] = 2  # v2: the reason is sealed (a string only when upcast from v1)
    volunteer_id: uuid.UUID
    reason: Sealed | Reason
    """Copied from the WithdrawPledge: sealed under the volunteer's key."""
