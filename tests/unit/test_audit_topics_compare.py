"""Comparing an archived partition with its topic: each way they can differ is named."""

from __future__ import annotations

import uuid

import pytest

from services.audit.evidence.topics_compare import Copy, compare_partition

pytestmark = pytest.mark.unit

IDS = [uuid.UUID(int=i + 1) for i in range(5)]


def logged(*order: int, value: bytes = b"v") -> list[Copy]:
    return [Copy(IDS[i], b"k", value, offset) for offset, i in enumerate(order)]


def archived(*order: int) -> list[Copy]:
    return [Copy(IDS[i], b"k", b"v", 100 + n) for n, i in enumerate(order)]


def kind(archive: list[Copy], topic: list[Copy]) -> tuple[str, int | None] | None:
    found = compare_partition("needs.events", 0, archive, topic).finding
    return None if found is None else (found.kind, found.archive_seq)


def test_the_same_events_in_the_same_order_agree() -> None:
    assert kind(archived(0, 1, 2), logged(0, 1, 2)) is None


def test_a_redelivery_and_a_topic_ahead_of_the_archive_are_fine() -> None:
    report = compare_partition("needs.events", 0, archived(0, 1), logged(0, 1, 0, 2, 3))
    assert report.finding is None and report.unarchived == 2


def test_each_difference_is_named_at_the_first_archive_row_concerned() -> None:
    edited = [*logged(0, 1), Copy(IDS[2], b"k", b"other", 2)]
    assert kind(archived(0, 1, 2), edited) == ("changed", 102)
    assert kind(archived(0, 2), logged(0, 1, 2)) == ("missing", 101)
    assert kind(archived(0, 3, 1), logged(0, 1)) == ("inserted", 101)
    assert kind(archived(0, 2, 1), logged(0, 1, 2)) == ("reordered", 101)
