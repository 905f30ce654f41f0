-- Key hand-overs (services/audit/rotation.py): the old signing key and the new one both sign a
-- statement naming the new key and the tree size from which it signs. Stored here, archived as a
-- KeyRotated event on ledger.checkpoints and written to the witness directory: a verifier who
-- pinned either key follows them to trust the other, each only for its own span of history.
CREATE TABLE key_rotations (
    old_key_id     bytea PRIMARY KEY,
    old_public_key bytea NOT NULL,
    new_public_key bytea NOT NULL,
    after          bigint NOT NULL CHECK (after >= 0),
    old_signature  bytea NOT NULL,
    new_signature  bytea NOT NULL,
    event_id       uuid NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
