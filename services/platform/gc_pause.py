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
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block; re-enable it after if it was enabled
    (nesting is safe: only the outermost pause re-enables). The first collection after the
    block walks what it built once; a command that builds one result and exits pauses for its
    whole run instead (`exchange audit replay`, `invariants`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
