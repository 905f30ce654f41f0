-- Tamper evidence (docs/audit.md): every archived row carries the SHA-256 of its canonical
-- content and the chain hash linking it to the row before it (archive_seq order). Rows archived
-- by an older version have neither; the ledger hashes them, in archive_seq order, at its next
-- start, before it archives anything new (the layout is computed in Python, in one place).
ALTER TABLE archive ADD COLUMN content_hash bytea, ADD COLUMN chain_hash bytea;
CREATE TABLE archive_legacy (until_seq bigint NOT NULL);
INSERT INTO archive_legacy SELECT coalesce(max(archive_seq), 0) FROM archive;

-- Signed tree heads: the RFC 6962 Merkle root over the first tree_size rows, the chain hash of
-- row tree_size, and the Ed25519 signature of the note (services/audit/checkpoint.py) that
-- holds both. Each is also published as a CheckpointRecorded event on ledger.checkpoints
-- (event_id), so holders outside the exchange keep a copy the exchange cannot take back.
CREATE TABLE checkpoints (
    tree_size    bigint PRIMARY KEY,
    root_hash    bytea NOT NULL,
    chain_hash   bytea NOT NULL,
    signature    bytea NOT NULL,
    key_id       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    event_id     uuid UNIQUE NOT NULL,
    published_at timestamptz
);
