-- Records whose `producer` header does not name their topic's single writer (schemas/topics.py),
-- or that carry none: a service writing where it must not, or anyone producing by hand
-- (docs/audit.md, "Who wrote it"). The ledger writes a row in the same transaction as the
-- archive row it is about; the event itself is archived and projected as the log holds it (the
-- archive is a faithful copy of the log, and the matcher has seen the same record).
-- `exchange audit verify` reports every row here. Numbered 0012, not 0011: another branch holds 0011.
CREATE TABLE producer_flags (
    archive_seq     bigint PRIMARY KEY,
    event_id        uuid NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    event_type      text NOT NULL,
    claimed         text,
    expected        text NOT NULL,
    reason          text NOT NULL,
    found_at        timestamptz NOT NULL DEFAULT now()
);
