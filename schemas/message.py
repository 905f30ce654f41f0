"""The base of every payload: its wire name and schema version."""

from __future__ import annotations

from typing import ClassVar

from schemas.common import Frozen


class Message(Frozen):
    """A command or event payload. `TYPE` is its name on the wire; `VERSION` its current schema
    version. Changing a model's JSON Schema requires a new VERSION and an upcaster from the old
    one (the golden-file tests enforce both)."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
