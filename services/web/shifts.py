"""A volunteer's shifts as their page shows them: hours served this year, what is coming up,
what is past. Pure functions of `GET /v1/volunteers/{id}` and the moment; no I/O.

"This year" is the calendar year in Nanjing (Asia/Shanghai): a shift confirmed at 00:30 on
1 January there counts for the new year, though it is still 31 December in UTC. A shift counts
with the minutes its community confirmed, never the minutes planned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.web.i18n import ZONE

UPCOMING = ("accepted",)
"""Matches still to be served (proposed ones are asked about separately)."""


def _moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def minutes_this_year(matches: Iterable[Mapping[str, Any]], now: datetime) -> int:
    """Confirmed minutes of the matches completed in `now`'s calendar year in Nanjing."""
    year = now.astimezone(ZONE).year
    total = 0
    for m in matches:
        done = _moment(m.get("completed_at"))
        if m.get("status") == "completed" and done and done.astimezone(ZONE).year == year:
            total += int(m.get("minutes_served") or 0)
    return total


def minutes_served(matches: Iterable[Mapping[str, Any]]) -> int:
    """Confirmed minutes of every completed match."""
    return sum(int(m.get("minutes_served") or 0) for m in matches if m["status"] == "completed")


def hours(minutes: int) -> str:
    """Minutes as hours with one decimal ("2.5"), rounded half up, without a float."""
    tenths = (minutes * 10 + 30) // 60
    return f"{tenths // 10}.{tenths % 10}"


def _start(m: Mapping[str, Any]) -> datetime | None:
    shift = m.get("shift")
    return _moment(shift.get("start")) if isinstance(shift, Mapping) else None


def _end(m: Mapping[str, Any]) -> datetime | None:
    shift = m.get("shift")
    return _moment(shift.get("end")) if isinstance(shift, Mapping) else None


def upcoming_and_past(
    matches: Iterable[Mapping[str, Any]], now: datetime
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Accepted shifts not yet over, soonest first; and every other answered shift (served,
    declined, missed, withdrawn, expired, or accepted and over), latest first."""
    coming, past = [], []
    for m in matches:
        if m.get("status") == "proposed":
            continue
        end = _end(m)
        if m.get("status") in UPCOMING and (end is None or end > now):
            coming.append(m)
        else:
            past.append(m)
    far = datetime.max.replace(tzinfo=ZONE)
    coming.sort(key=lambda m: _start(m) or far)
    past.sort(key=lambda m: _start(m) or far, reverse=True)
    return coming, past
