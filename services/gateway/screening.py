"""Personal data is refused at the door: the log it would enter can never forget it.

Every string a client typed into a write (the request body, field by field, and the
Idempotency-Key, which is stored with the posting) is checked by the one set of detectors in
`schemas/personal_data.py`. A hit is a 422 that names the field and the kind of data, never the
value, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

from pydantic import BaseModel

from schemas.personal_data import find_personal_data

IDEMPOTENCY_FIELD = "header.Idempotency-Key"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, text) of every free string in a dumped body; vocabulary values skipped."""
    if isinstance(value, Enum):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{i}" if path else str(i))


def personal_data_problems(
    body: BaseModel | None, idempotency_key: str | None
) -> list[dict[str, str]]:
    """Every field that carries personal data, in the shape of the API's other 422s."""
    found = []
    texts = list(_strings(body.model_dump(mode="python"), "")) if body is not None else []
    if idempotency_key:
        texts.append((IDEMPOTENCY_FIELD, idempotency_key))
    for field, text in texts:
        hit = find_personal_data(text)
        if hit is not None:
            found.append(
                {
                    "field": field,
                    "reason": f"{hit.reason}: personal data must not be posted ({hit.kind})",
                    "value_type": "string",
                }
            )
    return found
