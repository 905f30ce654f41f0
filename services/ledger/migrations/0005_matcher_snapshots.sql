-- The matcher's state per partition of matcher.inputs, with the input offset it reflects, so a
-- worker taking a partition over replays only what came after (faust changelogs cannot be
-- trusted on the embedded broker, whose end offsets are reported short). `outputs_from` holds,
-- per output partition, an offset at or before anything written for inputs after the snapshot:
-- where to look for decisions already written before writing missing ones.
CREATE TABLE matcher_snapshots (
    kafka_partition integer PRIMARY KEY,
    next_offset     bigint NOT NULL,
    state           bytea NOT NULL,
    outputs_from    jsonb NOT NULL,
    events_applied  bigint NOT NULL,
    code_version    text NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);
