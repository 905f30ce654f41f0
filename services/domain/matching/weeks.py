"""Nanjing's weeks: weekly limits and fairness count by them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))
"""Weeks (weekly limits, fairness) are the communities' weeks: China has one offset and no
summer time, so a fixed offset is exact and needs no time-zone database."""


def local_week(at: datetime) -> tuple[int, int]:
    """The ISO (year, week) of `at` in Nanjing."""
    year, week, _ = at.astimezone(CHINA).isocalendar()
    return year, week
