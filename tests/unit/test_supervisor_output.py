"""The supervisor's terminal may be a file on a full disk: writing to it never stops it."""

from __future__ import annotations

import errno
import io

import pytest

from services.supervisor import say

pytestmark = pytest.mark.unit


class FullDisk(io.StringIO):
    """A terminal redirected to a file on a disk with no space left."""

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_line_to_a_full_disk_is_dropped_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", FullDisk())
    say("service ledger exited (1); restarting in 1s")  # before: OSError, and the exchange died
