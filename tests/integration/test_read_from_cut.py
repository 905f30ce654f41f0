"""A reader of partitions that are written steadily still ends, at the moment it was told.

The matcher's rebuild once waited minutes for "three empty polls in a row" while the router
kept writing matcher.inputs under load; `read_from(..., written_before_ms=)` stops each
partition at its first record written after the cut instead."""

from __future__ import annotations

import threading
import time

from kafka import KafkaProducer

from services.platform.kafka import read_from
from tests.conftest import EmbeddedBroker

TOPIC = "steady.writes"


def test_a_read_with_a_cut_ends_under_steady_writes(broker: EmbeddedBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    before = [f"before-{i}".encode() for i in range(50)]
    sent = [producer.send(TOPIC, value=v, partition=i % 2) for i, v in enumerate(before)]
    producer.flush()
    cut = max(f.get(timeout=30).timestamp for f in sent)
    while time.time() * 1000 <= cut + 1:  # what is written next carries a later millisecond
        pass
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            for p in (0, 1):
                producer.send(TOPIC, value=b"after", partition=p)
            producer.flush()

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        done = threading.Event()
        got: list[bytes] = []

        def read() -> None:
            starts = {(TOPIC, 0): 0, (TOPIC, 1): 0}
            got.extend(r.value for r in read_from(broker.bootstrap, starts, written_before_ms=cut))
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(60), "the read never ended while the partitions were being written"
    finally:
        stop.set()
        writer.join(30)
        producer.close()
    assert sorted(got) == sorted(before)
