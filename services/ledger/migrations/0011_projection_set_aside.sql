-- Events the ledger archived but set aside instead of projecting (their projection raised, or
-- PostgreSQL refused their data), each with the reason and the dead letter that reports it.
-- The archive keeps the event (it is the log); the auditor's replay reads this table to make
-- the same skip for the refusals only PostgreSQL could make.
CREATE TABLE projection_set_aside (
    event_id          uuid PRIMARY KEY,
    archive_seq       bigint NOT NULL,
    topic             text NOT NULL,
    event_type        text NOT NULL,
    reason            text NOT NULL,
    dead_letter_id    uuid NOT NULL,
    dead_letter_topic text NOT NULL,
    dead_letter_key   bytea NOT NULL,
    dead_letter       bytea NOT NULL,
    set_aside_at      timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz
);
CREATE INDEX projection_set_aside_unpublished ON projection_set_aside (archive_seq)
    WHERE published_at IS NULL;

-- Dead letters of every consumer, as archived: counted for /healthz and /metrics.
CREATE INDEX archive_dead_letters ON archive (archive_seq)
    WHERE event_type = 'MessageDeadLettered';
