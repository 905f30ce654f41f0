"""Pausing Python's cyclic garbage collector around batch work that only builds data.

A fold of a million events, or a worker's batch, allocates millions of dicts, tuples and
dataclasses that live on. Each allocation burst triggers the cyclic collector, and its full
collections walk every live container again: on the auditor's replay that was more than half
of the time. The objects built there hold no reference cycles that need collecting
(reference counting frees them), so the collector is paused for the batch and restored after.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc(freeze: bool = False) -> Iterator[None]:
    """Disable the cyclic collector inside the block; re-enable it after if it was enabled
    (nesting is safe: only the outermost pause re-enables).

    With `freeze`, what the block built and kept is moved out of the collector's sight when it
    ends: otherwise the first collection after it walks all of it once. For a command that
    builds one large result and exits (a replay); not for a service, whose cyclic garbage
    frozen this way would never be collected."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if freeze:
                gc.freeze()
            gc.enable()
