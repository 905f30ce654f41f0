-- Per-stream sequence checking (docs/audit.md, "exchange audit sequences"): the last sequence
-- number the ledger saw on each sequenced stream, and every gap, late arrival or repeated
-- number it found, written in the same transaction as the archived rows. Volunteer minutes are
-- journalled in journal_lines under the unit 'MIN' (no table change needed).
CREATE TABLE stream_positions (
    stream_id    text PRIMARY KEY,
    last_seq     bigint NOT NULL,
    last_event   uuid,
    archive_seq  bigint,
    events       bigint NOT NULL DEFAULT 0
);

CREATE TABLE sequence_anomalies (
    anomaly_id   bigserial PRIMARY KEY,
    stream_id    text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('gap', 'late', 'repeat')),
    expected_seq bigint NOT NULL,
    got_seq      bigint NOT NULL,
    event_id     uuid NOT NULL,
    event_type   text NOT NULL,
    archive_seq  bigint NOT NULL,
    topic        text NOT NULL,
    found_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, kind)
);
CREATE INDEX sequence_anomalies_stream ON sequence_anomalies (stream_id, anomaly_id);

-- Streams archived before this migration: start from the highest number seen, so only what
-- comes after is checked live (`exchange audit sequences --rescan` checks the whole archive).
INSERT INTO stream_positions (stream_id, last_seq, events)
    SELECT stream_id, max(stream_seq), count(*) FROM archive
    WHERE stream_seq > 0 AND (split_part(stream_id, ':', 1), topic) IN (
        ('need', 'needs.events'), ('fund', 'funds.events'), ('volunteer', 'volunteers.events'),
        ('match', 'matches.events'), ('organisation', 'organisations.events'))
    GROUP BY stream_id;
