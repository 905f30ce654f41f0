"""One exchange for the whole fault suite, on a small filesystem of its own where the machine
allows it (so that the full-disk test can fill it), and the steady load every test drives.

Starting an exchange costs half a minute on two cores, so the tests share one and each leaves
it healthy for the next; a test that must restart it (a killed supervisor, a restart while the
ledger lags) replaces it in `Shared`.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Exchange
from tests.faults.load import MixedLoad

SMALL_DISK_MB = 768
"""The var directory's own filesystem: room for PostgreSQL, logs and the run, little more."""


@dataclass
class Shared:
    """The exchange under test, its tokens, and whether its var dir is a filesystem of its own."""

    ex: Exchange
    foundation: str
    community: str
    own_filesystem: bool
    mount: Path
    port: int
    verdicts: Path

    def load(self, seed: int) -> MixedLoad:
        """A fresh mixed load against the current exchange."""
        return MixedLoad(self.ex.url, self.foundation, self.community, seed=seed)

    def ensure_running(self) -> None:
        """Start the exchange again if an earlier test left it dead, so that one failure does
        not fail every test after it."""
        if self.ex.process is not None and self.ex.process.poll() is not None:
            self.ex.kill_tree()
            self.restart()

    def restart(self) -> None:
        """Start the exchange again on the same var dir (its processes must be gone)."""
        self.ex = Exchange(self.ex.var_dir, http_port=self.port).start()
        self.ex.wait_healthy(timeout=240)


def _mount_small_fs(where: Path) -> bool:
    """A tmpfs of SMALL_DISK_MB on `where`, when this machine lets us mount (root)."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m,mode=0755", "tmpfs", str(where)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="package")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """The exchange the fault tests share, with a foundation and a community registered."""
    mount = tmp_path_factory.mktemp("faults") / "disk"
    own = _mount_small_fs(mount)
    ex = Exchange(mount / "var").start()
    try:
        ex.wait_healthy(timeout=240)
        foundation, community = ex.create_orgs(
            ("foundation", "故障演练慈善基金会", "鼓楼区", None),
            ("community", "故障演练社区", "鼓楼区", "江东街道"),
        )
        state = Shared(
            ex,
            foundation=foundation,
            community=community,
            own_filesystem=own,
            mount=mount,
            port=int(ex.url.rsplit(":", 1)[1]),
            verdicts=tmp_path_factory.getbasetemp() / "fault-verdicts.jsonl",
        )
    except BaseException:
        ex.kill_tree()
        raise
    try:
        yield state
    finally:
        print(f"\nfault verdicts: {state.verdicts}")
        try:
            state.ex.stop(timeout=90)
        finally:
            state.ex.kill_tree()
            if own:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)
