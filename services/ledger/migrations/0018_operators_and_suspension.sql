-- The exchange's operators (issue #16): people who register, suspend and reinstate
-- organisations and re-issue or revoke their tokens over HTTP. An operator is not an
-- organisation: it posts nothing, owns nothing, and acts in the log as role `system` under its
-- own id. Its bearer tokens live in access_tokens like everyone's.
CREATE TABLE operators (
    operator_id uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE access_tokens DROP CONSTRAINT access_tokens_principal_kind_check;
ALTER TABLE access_tokens ADD CONSTRAINT access_tokens_principal_kind_check
    CHECK (principal_kind IN ('organisation', 'volunteer', 'operator'));

-- A suspended organisation's tokens are refused (403) until it is reinstated; written in the
-- same transaction as the OrganisationSuspended / OrganisationReinstated outbox row.
ALTER TABLE organisations ADD COLUMN suspended_at timestamptz;
-- The last stream_seq used on the organisation's stream (`organisation:<id>`, numbered
-- densely: 1 is its registration); the row lock serialises the operator's acts on it.
ALTER TABLE organisations ADD COLUMN stream_seq integer NOT NULL DEFAULT 1;

-- An operator's own token is re-issued like anyone's, and recorded the same way.
ALTER TABLE token_events DROP CONSTRAINT token_events_principal_kind_check;
ALTER TABLE token_events ADD CONSTRAINT token_events_principal_kind_check
    CHECK (principal_kind IN ('organisation', 'volunteer', 'operator'));
