"""Dead letters: a message a consumer could not decode or validate, parked with the reason and
its original bytes on the topic's dead-letter topic, so the stream goes on and nothing is lost."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, NonNegativeInt

from schemas.message import Message

Hex = Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$", max_length=2 * 1024 * 1024)]


class MessageDeadLettered(Message):
    """`topic`/`partition`/`offset` held bytes its consumer could not read, for `reason`.

    The reason names fields and types, never values; the original bytes are kept (hex) for
    whoever repairs and replays them."""

    TYPE: ClassVar[str] = "MessageDeadLettered"
    topic: Annotated[str, Field(min_length=1, max_length=249)]
    partition: NonNegativeInt
    offset: NonNegativeInt
    consumer: Annotated[str, Field(min_length=1, max_length=80)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    original_key_hex: Hex
    original_value_hex: Hex
