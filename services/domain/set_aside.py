"""Setting one event aside: the consumer's answer to an event it cannot decide or project.

A schema-valid event can still be one no consumer can handle: a need whose goods cost more than
any amount of money may hold, a date so close to the year 9999 that moving it to UTC leaves the
calendar, a NUL character PostgreSQL refuses to store. Before these rules existed, such an event
crashed its consumer at every restart and stopped the whole exchange. Now a consumer that cannot
handle one event sets that event aside (dead-letter topic, the reason, an audit record) and goes
on with the next.

A set-aside must be a pure function of the event and the state before it, so that a replay or a
rebuild makes exactly the same choice as the live run: the reason is built from the exception's
type and message only, and the exceptions that depend on the machine rather than on the data
(memory, recursion depth) are never set aside but raised.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

REASON_LIMIT = 500
"""Characters of a reason kept (it travels in dead letters, audit rows and /healthz)."""

NOT_DETERMINISTIC: tuple[type[BaseException], ...] = (MemoryError, RecursionError)
"""Failures of the machine, not of the event: the same event may pass on a retry, so setting
it aside would make live and replay choose differently. These stop the consumer, as before."""


class SetAside(Exception):
    """Raised by a pure step *before it changed any state*: the input is set aside as it is.

    Steps that raise it promise that nothing was mutated, so the caller need not roll back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PYDANTIC_LINK = re.compile(r"\s*For further information visit \S+")
_PYDANTIC_VALUE = re.compile(r"input_value=.*?, (input_type=)")


def reason_of(exc: BaseException) -> str:
    """A deterministic, bounded description of why an event was set aside.

    One line, without pydantic's documentation links or the failing value (it may be personal
    data, and the reason is shown in /healthz; the dead letter keeps the original bytes), and
    with NUL spelled out: the reason is itself stored in PostgreSQL text, which cannot hold
    NUL."""
    if isinstance(exc, SetAside):
        text = exc.reason
    else:
        text = _PYDANTIC_VALUE.sub(r"\1", _PYDANTIC_LINK.sub("", str(exc)))
        text = f"{type(exc).__name__}: {text}"
    text = " ".join(text.split()).replace("\x00", "\\x00")  # pydantic's messages span lines
    return text[:REASON_LIMIT]


def settable_aside(exc: BaseException) -> bool:
    """Whether an exception from a pure step may set its input aside (see NOT_DETERMINISTIC)."""
    return isinstance(exc, Exception) and not isinstance(exc, NOT_DETERMINISTIC)


INT64 = (-(2**63), 2**63 - 1)
NUL = "\x00"


def unstorable(value: Any, where: str = "value") -> str | None:
    """Why PostgreSQL would refuse `value` in a read model, or None if it can store it.

    Pure, so the ledger (before it writes) and the auditor's replay (before it folds) refuse the
    same events: text and jsonb cannot hold NUL; a timestamptz is sent as UTC, and an aware time
    within hours of 9999-12-31 has no UTC time Python can represent; bigint columns hold 64
    bits. Nested dictionaries and lists (jsonb) are searched too."""
    if isinstance(value, str):
        return (
            f"{where} contains a NUL character, which PostgreSQL cannot store"
            if (NUL in value)
            else None
        )
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            return f"{where} is out of the 64-bit integer range"
        return None
    if isinstance(value, datetime):
        try:
            value.astimezone(UTC) if value.tzinfo is not None else value
        except OverflowError:
            return f"{where} ({value.isoformat()}) is out of the range of a timestamp"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = unstorable(k, f"{where} key") or unstorable(v, f"{where}.{k}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = unstorable(v, f"{where}[{i}]")
            if found:
                return found
    return None
