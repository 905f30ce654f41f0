"""A step that fails half-way leaves no half-changed state behind (services/platform/rollback.py,
ProjectionFold.try_apply), and the set-aside is the same on every run."""

from __future__ import annotations

import uuid

import pytest

from services.domain.projection_fold import ProjectionFold
from services.domain.projections import JournalLine, Row, Update
from services.platform.kafka import Record, headers_for
from services.platform.processor import DECISION_FAILED, process
from services.platform.rollback import RollbackPoint

pytestmark = pytest.mark.unit


class Counter:
    """A processor that changes its state, then raises on a value of "boom" (mid-change)."""

    name = "counter"
    inputs = ("in",)
    outputs = ("out",)

    def __init__(self, ratio: float) -> None:
        self.state: dict[str, list[bytes]] = {"seen": []}
        self.rollback = RollbackPoint(self, ("state",), ratio=ratio)

    def handle(self, record: Record) -> list[object]:
        self.state["seen"].append(record.value)  # changed before the failure
        if record.value == b"boom":
            raise ValueError("boom")
        return []


def rec(offset: int, value: bytes) -> Record:
    return Record("in", 0, offset, b"k", value, tuple(headers_for(uuid.uuid4(), "X")))


@pytest.mark.parametrize("ratio", [0.0, 1e9])  # a point at every record, or only the first
def test_a_failure_half_way_is_undone_and_the_record_dead_lettered(ratio: float) -> None:
    proc = Counter(ratio)
    values = [b"a", b"b", b"boom", b"c", b"boom", b"d"]
    parked = [out for i, v in enumerate(values) for out in process(proc, rec(i, v))]  # type: ignore[arg-type]
    assert proc.state["seen"] == [b"a", b"b", b"c", b"d"]  # as if the failures never came
    assert [p.topic for p in parked] == ["in.dlq", "in.dlq"]
    assert b"set aside: ValueError: boom" in parked[0].value and DECISION_FAILED


def test_the_fold_applies_an_event_whole_or_not_at_all() -> None:
    fold = ProjectionFold()
    need = uuid.uuid4()
    first = uuid.uuid4()
    assert fold.try_apply(first, [Row("rm_needs", {"need_id": need, "status": "open"})]) is None
    before = {t: {k: dict(v) for k, v in rows.items()} for t, rows in fold.tables.items()}
    balances, writers = dict(fold.balances), {k: list(v) for k, v in fold.writers.items()}
    bad = uuid.uuid4()
    reason = fold.try_apply(
        bad,
        [
            Update("rm_needs", "need_id", need, {"status": "cancelled"}),
            JournalLine("a", 5, "CNY"),
            Row("rm_funds", {"fund_id": uuid.uuid4()}),
            Row("no_such_table", {"x": 1}),  # fails after three changes
        ],
    )
    assert reason is not None and fold.set_aside == {bad: reason}
    assert fold.tables == before and fold.balances == balances and fold.writers == writers
    assert fold.events == 1
