"""Models of superseded schema versions, kept only so their JSON Schema stays exported.

Readers never use these: `schemas.codec` upcasts old payloads to the current model. They exist
so that a client validating an old message from the log can still find its schema.
"""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import Field

from schemas.common import Description
from schemas.message import Message
from schemas.specs import NeedSpec


class PostingRefusedV1(Message):
    """PostingRefused as first published: one reason and one optional field."""

    TYPE: ClassVar[str] = "PostingRefused"
    VERSION: ClassVar[int] = 1
    posting_id: uuid.UUID
    posting_type: Annotated[str, Field(max_length=80)]
    reason: Description
    field: Annotated[str, Field(max_length=200)] | None = None


def _post_need_v1() -> type[Message]:
    # Named as published (the JSON Schema's $defs key is the class name); the docstring is the
    # published description.
    class PostNeed(Message):
        """A community asks for help. The need id is assigned by the gateway."""

        TYPE: ClassVar[str] = "PostNeed"
        VERSION: ClassVar[int] = 1
        need_id: uuid.UUID
        need: NeedSpec

    return PostNeed


PostNeedV1 = _post_need_v1()
"""PostNeed as first published: one need, no weekly recurrence."""


LEGACY: tuple[type[Message], ...] = (PostingRefusedV1, PostNeedV1)
