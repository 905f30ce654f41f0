-- When the decision about each acknowledged posting was archived (accepted or refused), so that
-- /healthz and operators can see a posting that was kept but never decided: "kept" alone
-- (archived_at) is not the promise; "decided exactly once" is. The ledger sets it in the same
-- transaction as the decision's archive row. Postings that are facts rather than commands
-- (an organisation registered by the operator) are decided when they are archived.
ALTER TABLE postings ADD COLUMN decided_at timestamptz;
-- Postings archived before this column existed: their decisions cannot be told from SQL
-- (decision ids are uuid5 of the posting id), so they count as decided when archived.
UPDATE postings SET decided_at = archived_at WHERE archived_at IS NOT NULL;
CREATE INDEX postings_undecided ON postings (accepted_at) WHERE decided_at IS NULL;
