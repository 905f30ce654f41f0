"""Kafka edges for tooling and start-up: topic creation, reading a topic to its end, producing.

Tansu reports end offsets too low (see docs/architecture.md), so "caught up" here never trusts
end offsets: a topic is read until fetches come back empty several times in a row.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import all_topic_names, partitions_of
from services.platform.access import PRODUCER_HEADER, principal_of
from services.settings import remember_for_clients, remembered_for_clients

if TYPE_CHECKING:
    from services.settings import Settings

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "event_id"
EVENT_TYPE_HEADER = "event_type"


@dataclass(frozen=True)
class Record:
    """One message read from a topic, with the event id taken from its header when present."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int = 0

    @classmethod
    def of(cls, message: Any) -> Record:
        """From a kafka-python or aiokafka ConsumerRecord, or a faust Message."""
        raw = message.headers.items() if isinstance(message.headers, dict) else message.headers
        stamp = message.timestamp or 0
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value or b"",
            tuple((k, bytes(v)) for k, v in (raw or ())),
            int(stamp * 1000) if isinstance(stamp, float) else int(stamp),  # faust: seconds
        )

    @property
    def event_id(self) -> uuid.UUID | None:
        """The message's `event_id` header, or None for a message without one (e.g. poison)."""
        for name, raw in self.headers:
            if name == EVENT_ID_HEADER:
                try:
                    return uuid.UUID(raw.decode("ascii"))
                except (ValueError, UnicodeDecodeError):
                    return None
        return None

    @property
    def event_type(self) -> str | None:
        """The message's `event_type` header: a hint for `schemas.codec.decode`, never trusted
        alone (the decoded envelope must say the same)."""
        for name, raw in self.headers:
            if name == EVENT_TYPE_HEADER:
                return raw.decode("utf-8", "replace")
        return None


def headers_for(
    event_id: uuid.UUID, event_type: str, producer: str | None = None
) -> list[tuple[str, bytes]]:
    """Headers every message carries so that consumers can dedupe without decoding the value,
    and the `producer` header naming who wrote it: `producer` when given, else the process's
    service (see `set_producer`), else none."""
    headers = [(EVENT_ID_HEADER, str(event_id).encode()), (EVENT_TYPE_HEADER, event_type.encode())]
    who = producer or _producer
    if who is not None:
        headers.append((PRODUCER_HEADER, who.encode()))
    return headers


_producer: str | None = None


def set_producer(service: str | None) -> None:
    """Stamp this process's principal (`access.principal_of(service)`) on everything it writes.

    Set once by `exchange services run NAME`, so the header says which service wrote a record,
    not which topic it went to (stamping the topic's writer would make the check a tautology).
    Tools and tests leave it unset: what they write carries no producer header, and the ledger
    flags it on a registered topic, which is the point."""
    global _producer
    _producer = principal_of(service) if service else None


# ---- security: one place for every client's settings ----

Library = Literal["kafka-python", "aiokafka", "faust"]


def configure_security(settings: Settings) -> None:
    """Remember the process's settings for clients built far from them (tooling helpers below,
    the restore, the audit readers) so their signatures need not carry the settings. `exchange`'s
    main does it through `services.settings.remember_for_clients`, without importing Kafka's
    clients; unset, those clients connect PLAINTEXT as before."""
    remember_for_clients(settings)


def security(library: Library) -> dict[str, Any]:
    """`client_security` for the settings given to `configure_security` (PLAINTEXT if none)."""
    settings = remembered_for_clients()
    return client_security(settings, library) if settings is not None else {}


def client_security(settings: Settings, library: Library) -> dict[str, Any]:
    """Keyword arguments that make a client of `library` connect as `settings` say.

    Every Kafka client the exchange builds takes them from here, so PLAINTEXT, SASL_PLAINTEXT
    and SASL_SSL (SCRAM-SHA-512/256, one principal per service) mean the same for kafka-python,
    aiokafka and faust. PLAINTEXT returns nothing: the clients' defaults, unchanged.
    A SASL protocol without a username or password is refused here, at start, rather than as
    an authentication failure the client would retry for ever."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    username = settings.kafka_sasl_username
    password = _password(settings)
    if not username or password is None:
        raise SystemExit(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD_FILE (or KAFKA_SASL_PASSWORD)"
        )
    mechanism = settings.kafka_sasl_mechanism
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    tls = protocol == "SASL_SSL"
    if library == "kafka-python":
        out: dict[str, Any] = {
            "security_protocol": protocol,
            "sasl_mechanism": mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
        }
        if tls:
            out["ssl_check_hostname"] = True
            if cafile:
                out["ssl_cafile"] = cafile
        return out
    context = _ssl_context(cafile) if tls else None
    if library == "aiokafka":
        out = {
            "security_protocol": protocol,
            "sasl_mechanism": mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
        }
        if context is not None:
            out["ssl_context"] = context
        return out
    import faust

    # faust derives SASL_SSL from the presence of ssl_context, SASL_PLAINTEXT from its absence
    creds = faust.SASLCredentials(
        username=username, password=password, ssl_context=context, mechanism=mechanism
    )
    return {"broker_credentials": creds}


def _password(settings: Settings) -> str | None:
    if settings.kafka_sasl_password_file is not None:
        return settings.kafka_sasl_password_file.read_text(encoding="utf-8").rstrip("\r\n")
    if settings.kafka_sasl_password is not None:
        return settings.kafka_sasl_password.get_secret_value()
    return None


def _ssl_context(cafile: str | None) -> Any:
    """A verifying TLS context (hostname checked) trusting `cafile`, or the system's CAs."""
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def ensure_topics(bootstrap: str, names: Sequence[str] | None = None, timeout: float = 30) -> None:
    """Create the exchange's topics with their registered partition counts; existing ones stay.

    Explicit creation matters: Tansu auto-creates unknown topics with 4 partitions, which would
    silently change the keying of a topic registered with another count. Every topic keeps its
    messages forever (`retention.ms=-1`): processors and auditors replay from the beginning."""
    wanted = list(names) if names is not None else all_topic_names()
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="exchange-admin", **security("kafka-python")
            )
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            new = [
                NewTopic(
                    n,
                    num_partitions=partitions_of(n),
                    replication_factor=-1,
                    topic_configs={"retention.ms": "-1"},
                )
                for n in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won
                admin.create_topics(new)
            log.info("topics created", extra={"topics": missing})
    finally:
        admin.close()


def consumer(bootstrap: str, fetch_max_wait_ms: int = 10, **extra: Any) -> KafkaConsumer:
    """A group-less consumer for tooling; the caller assigns partitions explicitly."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_poll_records=5000,
        auto_offset_reset="earliest",
        client_id="exchange-reader",
        **security("kafka-python"),
        **extra,
    )


def read_all(
    bootstrap: str,
    topics: Sequence[str],
    quiet_polls: int = 3,
    poll_ms: int = 100,
    fetch_max_wait_ms: int = 10,
) -> Iterator[Record]:
    """Every message of `topics` from the beginning, partition order preserved, until caught up.

    "Caught up" is `quiet_polls` consecutive empty polls, not an end offset (see module doc)."""
    reader = consumer(bootstrap, fetch_max_wait_ms=fetch_max_wait_ms)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(_partitions(reader, t))]
        yield from _drain(reader, {tp: 0 for tp in parts}, quiet_polls, poll_ms)
    finally:
        reader.close()


def read_from(
    bootstrap: str,
    starts: dict[tuple[str, int], int],
    quiet_polls: int = 3,
    poll_ms: int = 100,
    written_before_ms: int | None = None,
) -> Generator[Record, None, None]:
    """Every message of the given partitions from the given offsets on, until caught up
    (a generator: closing it early closes its consumer).

    `written_before_ms` (a timestamp in ms): a partition is read no further than its first
    record written after it. Without it, a reader of partitions that are written steadily may
    never see the empty polls that mean "caught up"; with it, it ends once every partition
    reached the present or fell quiet. The records after the cut are left for a live consumer."""
    reader = consumer(bootstrap)
    try:
        for topic in {t for t, _ in starts}:
            _partitions(reader, topic)  # metadata first, so that assign finds the partitions
        yield from _drain(
            reader,
            {TopicPartition(t, p): o for (t, p), o in starts.items()},
            quiet_polls,
            poll_ms,
            written_before_ms,
        )
    finally:
        reader.close()


def _drain(
    reader: KafkaConsumer,
    starts: dict[TopicPartition, int],
    quiet_polls: int,
    poll_ms: int,
    written_before_ms: int | None = None,
) -> Iterator[Record]:
    if not starts:
        return
    reader.assign(list(starts))
    for tp, offset in starts.items():
        reader.seek(tp, offset)
    reached: set[TopicPartition] = set()
    empty = 0
    while empty < quiet_polls and len(reached) < len(starts):
        batch = reader.poll(timeout_ms=poll_ms)
        if not batch or not any(batch.values()):
            empty += 1
            continue
        empty = 0
        for tp in sorted(batch, key=lambda t: (t.topic, t.partition)):
            for m in batch[tp]:
                if written_before_ms is not None and m.timestamp > written_before_ms:
                    reached.add(tp)
                    reader.pause(tp)
                    break
                yield Record.of(m)


def _partitions(reader: KafkaConsumer, topic: str, timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        parts = reader.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            return set()
        time.sleep(0.1)


def topics_are_empty(bootstrap: str, topics: Sequence[str]) -> bool:
    """True when none of `topics` holds a single message (read from the start, no end offsets)."""
    return next(iter(read_all(bootstrap, topics, quiet_polls=3)), None) is None


def producer(bootstrap: str, **extra: Any) -> KafkaProducer:
    """A durable producer for tooling: acks from all in-sync replicas, idempotent, ordered."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,
        client_id="exchange-tool",
        **security("kafka-python"),
        **extra,
    )


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as the Java client).

    Writers pass it explicitly so the gateway, the restorer and any client agree by design."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions
