-- Every topic's copy of an event is archived in its own row. matcher.inputs repeats events
-- first seen on the intake topics, and bringing back its exact order after the broker forgets
-- needs those rows. Read models apply each event once; projected_events records that, with
-- the sequence of the event's first appearance.
ALTER TABLE archive DROP CONSTRAINT archive_event_id_key;
CREATE UNIQUE INDEX archive_topic_event ON archive (topic, event_id);
CREATE INDEX archive_event ON archive (event_id);

CREATE TABLE projected_events (
    event_id    uuid PRIMARY KEY,
    archive_seq bigint NOT NULL
);
INSERT INTO projected_events (event_id, archive_seq)
    SELECT DISTINCT ON (event_id) event_id, archive_seq FROM archive ORDER BY event_id, archive_seq;
CREATE INDEX projected_events_seq ON projected_events (archive_seq);
