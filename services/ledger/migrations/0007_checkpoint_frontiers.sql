-- The ledger's Merkle frontier (the O(log n) roots of the perfect subtrees the tree is made of)
-- and the archive_seq of the last row it covers, stored with each checkpoint: the ledger resumes
-- its tree from the latest checkpoint at start instead of reading every content hash of the
-- archive. Checkpoints stored by an older version have neither; the ledger then rebuilds the
-- tree from the whole archive, as before, and the next checkpoint carries both.
ALTER TABLE checkpoints ADD COLUMN frontier bytea[], ADD COLUMN last_seq bigint;
