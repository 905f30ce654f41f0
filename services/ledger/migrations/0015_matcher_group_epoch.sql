-- Which consumer group the matcher workers share: `matcher` at epoch 0, `matcher.N` at epoch N.
-- A worker whose rebalance has not ended for JOIN_STALL_SECONDS moves every worker to a fresh
-- group by raising the epoch (compare-and-set on the value it saw); the others see the change
-- within seconds and follow (services/matcher/worker.py, docs/operations.md). Why: the embedded
-- broker can keep a group waiting for a leader that left during a rebalance, for good; a new
-- group starts clean. Committed offsets only show lag (a worker rebuilds from its snapshot), so
-- nothing is lost with the old group.
CREATE TABLE matcher_group (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch      integer NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    moved_at   timestamptz,
    moved_by   text,
    reason     text
);
INSERT INTO matcher_group DEFAULT VALUES;
