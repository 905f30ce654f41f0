-- Who may act: organisations, their bearer tokens (hashed), volunteers, and who owns what.

CREATE TABLE organisations (
    org_id      uuid PRIMARY KEY,
    kind        text NOT NULL,
    name        text NOT NULL,
    district    text NOT NULL,
    street      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

-- Volunteers are pseudonymous; no contact details are kept here (or anywhere in the log).
CREATE TABLE volunteers (
    volunteer_id  uuid PRIMARY KEY,
    registered_by uuid NOT NULL REFERENCES organisations (org_id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens, stored as SHA-256 of the token (tokens are 256-bit random: no slow hash
-- needed). A token is shown once, when issued.
CREATE TABLE access_tokens (
    token_hash     text PRIMARY KEY,
    principal_kind text NOT NULL CHECK (principal_kind IN ('organisation', 'volunteer')),
    principal_id   uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX access_tokens_principal ON access_tokens (principal_kind, principal_id);

-- Which organisation owns a fund or a need, written in the same transaction as the posting
-- that creates it, so the gateway can refuse another organisation at once (403).
CREATE TABLE ownership (
    resource     text NOT NULL,
    resource_id  uuid NOT NULL,
    org_id       uuid NOT NULL,
    PRIMARY KEY (resource, resource_id)
);
CREATE INDEX ownership_org ON ownership (org_id);

-- Near-duplicate detection: what each need posting looked like, to flag repeats to the poster.
ALTER TABLE postings ADD COLUMN fingerprint text;
CREATE INDEX postings_fingerprint ON postings (org_id, fingerprint, accepted_at)
    WHERE fingerprint IS NOT NULL;

-- The ledger tells listeners (the gateway's event stream) when it archived something.
CREATE INDEX archive_recorded ON archive (archive_seq, event_type);

-- A volunteer is visible from registration; the pledge comes later and can be withdrawn.
ALTER TABLE rm_pledges ALTER COLUMN spec DROP NOT NULL;
ALTER TABLE rm_pledges ADD COLUMN status text NOT NULL DEFAULT 'active';

-- The match lifecycle: what was delivered, per match and per need.
ALTER TABLE rm_matches ADD COLUMN minutes_served integer;
ALTER TABLE rm_needs ADD COLUMN completed bigint NOT NULL DEFAULT 0;
