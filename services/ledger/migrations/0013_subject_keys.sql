-- Per-subject keys for sealed personal text (docs/privacy.md). A volunteer's pseudonym and a
-- need's description travel on the topics and sit in the archive only as AES-256-GCM
-- ciphertext under their subject's key, which lives here and nowhere else: never on a topic,
-- never in the archive, never in a read model. Deleting a row forgets every sealed value of
-- that subject at once (crypto-shredding); the archive, its hash chain and its checkpoints are
-- untouched, because they cover the ciphertext.
-- The gateway writes a key in the same transaction as the first posting sealed under it.
CREATE TABLE subject_keys (
    subject    text PRIMARY KEY CHECK (subject ~ '^(volunteer|need):[0-9a-f-]{36}$'),
    key        bytea NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Who was forgotten, when and by whom: no content, no key. A subject listed here never gets a
-- key again (the gateway refuses to seal new text about it), and auditors can count forgettings.
CREATE TABLE forgotten_subjects (
    subject      text PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    forgotten_by text NOT NULL,
    had_key      boolean NOT NULL
);
