"""Bytes on the wire to typed envelopes and back, upcasting older schema versions on read.

Every reader goes through `decode`, so an event stored years ago under version 1 reaches today's
code as the newest model. An upcaster is a pure function on the payload dict of one version that
returns the payload of the next.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from schemas import envelope as _envelope_module
from schemas.envelope import Envelope
from schemas.envelope import encode as encode  # its home; codec is where readers look
from schemas.messages import ALL_MESSAGES, Message
from schemas.refusals import posting_refused_v1_to_v2

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

MESSAGE_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in ALL_MESSAGES}

UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("PostingRefused", 1): posting_refused_v1_to_v2,
    ("PostNeed", 1): lambda payload: {**payload, "repeat": None},  # v2: weekly recurrence
    # v2 of the pledge messages adds travel options; every v1 pledge reads unchanged
    ("MakePledge", 1): dict,
    ("AmendPledge", 1): dict,
    ("PledgeMade", 1): dict,
    ("PledgeAmended", 1): dict,
    ("SupplyListed", 1): dict,
    # sealing (docs/privacy.md): a plain pseudonym or description stays valid, as plain text
    # that cannot be forgotten; only postings made since are sealed
    ("RegisterVolunteer", 1): dict,
    ("VolunteerRegistered", 1): dict,
    ("MakePledge", 2): dict,
    ("AmendPledge", 2): dict,
    ("PledgeMade", 2): dict,
    ("PledgeAmended", 2): dict,
    ("SupplyListed", 2): dict,
    ("PostNeed", 2): dict,
    ("NeedPosted", 1): dict,
    ("NeedAmended", 1): dict,
    ("SupplyRequested", 1): dict,
    # sealing donor labels, donation notes and volunteers' reasons: plain text stays valid
    ("ReceiveDonation", 1): dict,
    ("DonationReceived", 1): dict,
    ("WithdrawPledge", 1): dict,
    ("PledgeWithdrawn", 1): dict,
    ("DeclineMatch", 1): dict,
    ("MatchDeclined", 1): dict,
    # skills and categories became reference data: the wire values are the same strings, so
    # every earlier message reads unchanged (the enumerations are the seed of the lists)
    ("PostNeed", 3): dict,
    ("NeedPosted", 2): dict,
    ("NeedAmended", 2): dict,
    ("OpenFund", 1): dict,
    ("FundOpened", 1): dict,
    ("MakePledge", 3): dict,
    ("AmendPledge", 3): dict,
    ("PledgeMade", 3): dict,
    ("PledgeAmended", 3): dict,
    ("SupplyListed", 3): dict,
    ("SupplyRequested", 2): dict,
    # a fund's own reserve for urgent needs: a fund opened or listed before holds none
    ("OpenFund", 2): lambda payload: {**payload, "urgent_reserve_percent": 0},
    ("FundOpened", 2): lambda payload: {**payload, "urgent_reserve_percent": 0},
    ("SupplyListed", 4): lambda payload: {**payload, "urgent_reserve_percent": 0},
}
"""(type, version) -> function turning that version's payload into version + 1's."""


class DecodeError(ValueError):
    """A message that cannot become a current envelope; `reason` is safe to log (no values)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def upcast(
    event_type: str,
    version: int,
    payload: dict[str, Any],
    upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    target: int | None = None,
) -> dict[str, Any]:
    """Apply the upcaster chain from `version` to `target` (default: the type's current version)."""
    chain = UPCASTERS if upcasters is None else upcasters
    final = MESSAGE_TYPES[event_type].VERSION if target is None else target
    if version > final:
        raise DecodeError(f"{event_type} v{version} is newer than this reader (v{final})")
    while version < final:
        step = chain.get((event_type, version))
        if step is None:
            raise DecodeError(f"no upcaster from {event_type} v{version}")
        payload = step(payload)
        version += 1
    return payload


def model_version(event_type: str) -> int:
    """The current schema version of a message type."""
    return MESSAGE_TYPES[event_type].VERSION


def json_type(value: object) -> str:
    """The JSON type name of a value: what an error may say about input instead of the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def field_errors(error: ValidationError, skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Every failing field as path, reason and the type of the value given; never the value
    itself, which may be personal data."""
    out = []
    for err in error.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"] if p not in skip) or "(root)"
        given = "missing" if err["type"] == "missing" else json_type(err.get("input"))
        out.append({"field": path, "reason": err["msg"], "value_type": given})
    return out


def describe_errors(error: ValidationError) -> str:
    """Every failing field as `path: reason (given: type)`, on one line for logs and DLQs."""
    return "; ".join(
        f"{e['field']}: {e['reason']} (given: {e['value_type']})" for e in field_errors(error)
    )


_MAKING = threading.Lock()


class _Envelopes(dict[str, type[Envelope[Any]]]):
    """The envelope model of each type, parametrised on first use and kept (`Envelope[cls]`
    costs a cache lookup of several microseconds per call, and making all of them up front
    cost every process, a one-shot command included, about 140 ms at start)."""

    def model_of(self, event_type: str) -> type[Envelope[Any]] | None:
        """The model of `event_type`, made now if needed; None for an unknown type."""
        return self[event_type] if event_type in MESSAGE_TYPES else None

    def __missing__(self, event_type: str) -> type[Envelope[Any]]:
        with _MAKING:  # one model per type, even when two threads ask first at once
            made = dict.get(self, event_type)
            if made is not None:
                return made
            return self._make(event_type)

    def _make(self, event_type: str) -> type[Envelope[Any]]:
        model: type[Envelope[Any]] = Envelope[MESSAGE_TYPES[event_type]]  # type: ignore[valid-type]
        # Pickle finds a class by module and name; pydantic does not register the classes it
        # makes for `Envelope[X]` outside module level, so a processor's rollback point (a
        # pickle of its state, services/platform/rollback.py) failed on a waiting
        # Envelope[AcceptMatch] and stopped the matcher's router. Registered under their own
        # names, they pickle; schemas.envelope's module `__getattr__` makes one on demand for
        # a process that unpickles before it has used the type.
        setattr(_envelope_module, model.__qualname__, model)
        self[event_type] = model
        return model


ENVELOPES = _Envelopes()
"""The envelope model of each message type, by type name (made on first use)."""


def decode(raw: bytes, type_hint: str | None = None) -> Envelope[Message]:
    """Parse, upcast and validate one message; raise DecodeError naming what is wrong.

    `type_hint` is the type the record says it carries (its `event_type` header, the
    archive's column). With it, a message of the type's current version is validated straight
    from its bytes, in one pass inside pydantic's core; the result is kept only if it says the
    same type and version, so a wrong hint or an older version takes the general path, with
    its upcasters and errors."""
    model = ENVELOPES.model_of(type_hint) if type_hint is not None else None
    if model is not None:
        try:
            env = model.model_validate_json(raw)
        except (ValidationError, RecursionError):
            pass  # the general path names what is wrong, or upcasts an older version
        else:
            if env.event_type == type_hint and env.schema_version == model_version(type_hint):
                return env
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not UTF-8 JSON: {exc.__class__.__name__}") from None
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise DecodeError("not a JSON object")
    event_type = data.get("event_type")
    version = data.get("schema_version")
    if not isinstance(event_type, str) or event_type not in MESSAGE_TYPES:
        raise DecodeError("event_type: unknown or missing")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DecodeError("schema_version: missing or not a positive integer")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise DecodeError("payload: missing or not an object")
    data["payload"] = upcast(event_type, version, payload)
    data["schema_version"] = model_version(event_type)
    try:
        return ENVELOPES[event_type].model_validate(data)
    except ValidationError as exc:
        raise DecodeError(describe_errors(exc)) from None
    except RecursionError:
        raise DecodeError("payload: nested too deeply") from None
