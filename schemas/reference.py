"""Reference data on the log: the skills and need categories postings may name (issue #16).

Each list grows at run time: the operator defines terms for the whole city, a street office for
its own district. A term has a stable code (what postings carry), a Chinese and an English
label (what people read), and is retired rather than deleted, so everything ever posted with it
still reads. The events live on `reference.events`, one stream per term
(`reference:<kind>:<code>`: 1 is its definition, 2 its retirement), written by the gateway in
the transaction that changes the `reference_terms` table (services/reference.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from schemas.common import CODE_PATTERN, Name, PlaceName
from schemas.message import Message

TermCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
"""A term's code: lower-case ASCII, a letter first, 2–40 characters (`schemas.common`)."""

Label = Annotated[Name, Field(max_length=60)]
"""What people read for a term, in one language: NFC, 1–60 characters."""


class TermKind(StrEnum):
    """Which list a term belongs to."""

    SKILL = "skill"
    CATEGORY = "category"


class ReferenceTermDefined(Message):
    """A skill or need category was added to its list: postings may name `code` from now on
    (within `district` only, when one is given). The envelope's actor names who defined it:
    the operator (role `system`), a street office, or `seed` for the built-in terms."""

    TYPE: ClassVar[str] = "ReferenceTermDefined"
    kind: TermKind
    code: TermCode
    label_zh: Label
    label_en: Label
    district: PlaceName | None = None
    """The district the term is for (defined by its street office); None: the whole city."""


class ReferenceTermRetired(Message):
    """A term was retired: new postings may no longer name it; needs, pledges and funds
    already accepted with it keep it, and it still reads with its labels. Never undone: a
    term wanted again is defined anew under another code."""

    TYPE: ClassVar[str] = "ReferenceTermRetired"
    kind: TermKind
    code: TermCode
