"""Corrections: the log is never edited; a mistake is corrected by an event that references the
event it corrects and says why. Disclosure reports list corrections separately."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from pydantic import Field

from schemas.common import Description
from schemas.message import Message


class CorrectEvent(Message):
    """The owner of a stream (or an operator) asks to correct one of its events."""

    TYPE: ClassVar[str] = "CorrectEvent"
    corrects_event_id: uuid.UUID
    reason: Annotated[Description, Field(min_length=1, max_length=1000)]
    replacement: dict[str, Any]


class EventCorrected(Message):
    """`corrects_event_id` is to be read as if its payload were `replacement` (a payload of the
    same type and version as the corrected event); the original stays in the log."""

    TYPE: ClassVar[str] = "EventCorrected"
    corrects_event_id: uuid.UUID
    corrects_event_type: Annotated[str, Field(min_length=1, max_length=80)]
    reason: Annotated[Description, Field(min_length=1, max_length=1000)]
    replacement: dict[str, Any]
