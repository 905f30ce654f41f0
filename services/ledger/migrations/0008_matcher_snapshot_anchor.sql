-- A snapshot's offsets belong to one incarnation of the broker: after the embedded broker
-- forgets, restore renumbers each partition from the archive, and an offset alone would then
-- point at other inputs. `last_event_id` is the event id of the input at next_offset - 1 (the
-- last input that was new to the snapshotted state), so a worker can check on load that the
-- log it reads is the one the snapshot was taken from, and a restore can move the snapshot to
-- that input's new offset, or drop it when the input was never archived. Snapshots stored by
-- an older version have none: they are not trusted and the partition is replayed once.
ALTER TABLE matcher_snapshots ADD COLUMN last_event_id uuid;
