"""What a fund holds back for urgent needs, as its balance shows it.

The matcher keeps a fund's reserve as a share of its net donations (`Fund.reserve`): a low or
normal need takes only what the fund holds beyond it. What is *currently* held back is that
reserve, but never more than the money still available (what is promised or paid is gone from
it already). The API, the web app and the reports all show this one figure."""

from __future__ import annotations


def held_for_urgent(donated_minor: int, available_minor: int, percent: int) -> int:
    """Minor units of the fund's available money held back for high and critical needs now:
    `percent` of the net donations, capped at what is available (never below 0). It stops
    holding against a need 48 hours before its deadline (docs/matching.md); the balance shows
    the share as set, not that release."""
    reserve = max(donated_minor, 0) * percent // 100
    return max(min(reserve, available_minor), 0)
