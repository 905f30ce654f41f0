-- A fund's own reserve for urgent needs (issue 17, docs/matching.md "Reserves for urgent
-- needs"): the share of its net donations its foundation holds back for high and critical
-- needs, as opened (FundOpened v3) and as last set (FundReserveSet). Funds opened before hold
-- none: their FundOpened upcasts with 0, which the default gives them here.
ALTER TABLE rm_funds ADD COLUMN urgent_reserve_percent smallint NOT NULL DEFAULT 0
    CHECK (urgent_reserve_percent BETWEEN 0 AND 100);
