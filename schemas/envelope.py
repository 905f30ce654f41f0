"""The envelope every message on every topic travels in, and how derived ids are made.

Derived events get ids computed from the ids of what caused them, so that a replay of the log
reproduces every id byte for byte and a consumer seeing an event twice can tell.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, SerializeAsAny

from schemas.common import Frozen, IdempotencyKey, Moment, Role
from schemas.message import Message

NAMESPACE = uuid.UUID("8f5b0c1e-2d6a-5b8e-9c3f-4a1d7e6b2c90")
"""Namespace of every derived id (uuid5). Changing it would change every derived id: never do."""


def derive_id(cause: uuid.UUID, label: str) -> uuid.UUID:
    """The id of the event that `cause` produces under `label`; stable across replays."""
    return uuid.uuid5(NAMESPACE, f"{cause}/{label}")


class Actor(Frozen):
    """Who acted: an organisation (or volunteer) id and the role it acted in."""

    org_id: Annotated[str, Field(min_length=1, max_length=80)]
    role: Role


SYSTEM_ACTOR = Actor(org_id="exchange", role=Role.SYSTEM)

PayloadT = TypeVar("PayloadT", bound=BaseModel)


class Envelope(Frozen, Generic[PayloadT]):
    """One message: identity, position in its stream, time, actor, causality, then the payload.

    `occurred_at` is when the fact happened in the world (or was claimed to); `recorded_at` is
    when the exchange first recorded the chain it belongs to. Derived events copy both from their
    cause, never from a clock, so replaying the log yields identical bytes."""

    event_id: uuid.UUID
    event_type: Annotated[str, Field(min_length=1, max_length=80)]
    schema_version: Annotated[int, Field(ge=1, strict=True)]
    """Strict: "1", true or 1.0 are not a version (decoding from bytes must refuse what the
    general path refuses)."""
    stream_id: Annotated[str, Field(min_length=1, max_length=120)]
    stream_seq: Annotated[int, Field(ge=0)]
    occurred_at: Moment
    recorded_at: Moment
    actor: Actor
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    idempotency_key: IdempotencyKey | None = None
    payload: SerializeAsAny[PayloadT]


def originate(
    payload: Message,
    *,
    event_id: uuid.UUID,
    at: datetime,
    actor: Actor,
    stream_id: str,
    stream_seq: int = 0,
) -> Envelope[Message]:
    """The envelope of an event that starts its own chain (a clock tick, a generated posting,
    a dead letter): its own correlation, no cause, and one time for when it happened and was
    recorded. Derived events are made by `services.domain.outputs.derived` instead."""
    return Envelope[Message](
        event_id=event_id,
        event_type=payload.TYPE,
        schema_version=payload.VERSION,
        stream_id=stream_id,
        stream_seq=stream_seq,
        occurred_at=at,
        recorded_at=at,
        actor=actor,
        correlation_id=event_id,
        payload=payload,
    )


def encode(envelope: Envelope[Any]) -> bytes:
    """Canonical JSON bytes of an envelope (UTF-8, Chinese kept as characters, not escapes).
    Here, beside the envelope, so that a writer of a few message types (the operator's
    one-shot commands) need not import every model and upcaster (`schemas.codec`)."""
    return envelope.model_dump_json().encode("utf-8")


def __getattr__(name: str) -> object:
    """`Envelope[X]` by its class name, made on demand: what unpickling a rollback point needs
    in a process that has not used type X yet (schemas.codec makes the models lazily)."""
    if name.startswith("Envelope[") and name.endswith("]"):
        from schemas.codec import ENVELOPES

        event_type = name[len("Envelope[") : -1]
        model = ENVELOPES.model_of(event_type)
        if model is not None:
            return model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
