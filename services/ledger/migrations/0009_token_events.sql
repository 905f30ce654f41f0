-- Who re-issued or revoked whose bearer token, and when. Tokens (and their hashes) are not
-- repeated here: this is the account of the act, for operators and auditors.

CREATE TABLE token_events (
    event_seq      bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    principal_kind text NOT NULL CHECK (principal_kind IN ('organisation', 'volunteer')),
    principal_id   uuid NOT NULL,
    action         text NOT NULL CHECK (action IN ('rotated', 'revoked')),
    -- 'operator' (the exchange command) or the id of the organisation that acted
    actor          text NOT NULL,
    -- how many tokens that still worked stopped working
    tokens_revoked integer NOT NULL
);
CREATE INDEX token_events_principal ON token_events (principal_kind, principal_id, at);
