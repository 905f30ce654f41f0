-- Reference data (issue #16): the skills and need categories postings may name. The gateway
-- writes a row here and the ReferenceTermDefined / ReferenceTermRetired event (through the
-- outbox, reference.events) in one transaction, and checks every posting against these rows;
-- the log's events are the account of who defined or retired what, and the auditor's replay
-- folds them back into this table (services/audit/replay/reference.py).
CREATE TABLE reference_terms (
    kind        text NOT NULL CHECK (kind IN ('skill', 'category')),
    code        text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    label_zh    text NOT NULL,
    label_en    text NOT NULL,
    district    text,                -- NULL: the whole city
    defined_by  text NOT NULL,       -- an operator's id, a street office's id, or 'seed'
    defined_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    retired_by  text,
    stream_seq  integer NOT NULL DEFAULT 1,  -- last number used on reference:<kind>:<code>
    position    bigserial,           -- the lists' order: as defined (the seed's order first)
    PRIMARY KEY (kind, code)
);
