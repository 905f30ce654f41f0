"""Time as an input: a tick on the log says what time it is for every decision after it, so a
replay of the log decides expiry and deadlines exactly as the live run did."""

from __future__ import annotations

from typing import ClassVar

from schemas.common import Moment
from schemas.message import Message


class ClockTicked(Message):
    """It is now `at` for the processors that read this tick."""

    TYPE: ClassVar[str] = "ClockTicked"
    at: Moment
