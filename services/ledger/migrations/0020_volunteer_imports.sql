-- Bulk import of volunteers (issue #16, services/importing): which volunteer each row of an
-- organisation's file became, keyed by the organisation's own row key (编号 / ref). Written in
-- the same transaction as the volunteer's registration and first pledge (the outbox rows), so a
-- second run of the same file finds every row here and writes nothing. `row_hash` is a hash
-- of the row's cells as imported: a rerun whose row differs is reported, not applied.
-- No personal data: the ref is screened like every posted string; the pseudonym is not here.
CREATE TABLE volunteer_imports (
    org_id       uuid NOT NULL,
    ref          text NOT NULL,
    volunteer_id uuid NOT NULL UNIQUE,
    row_hash     text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, ref)
);
