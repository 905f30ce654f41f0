-- The archive, the gateway's outbox, consumer positions, the money journal and read models.

-- Every posting the gateway acknowledged, written before it answers: the source from which the
-- embedded broker's topics are rebuilt after it forgets them.
CREATE TABLE postings (
    posting_id      uuid PRIMARY KEY,
    seq             bigserial UNIQUE NOT NULL,
    topic           text NOT NULL,
    kafka_key       bytea NOT NULL,
    value           bytea NOT NULL,
    event_type      text NOT NULL,
    org_id          text NOT NULL,
    idempotency_key text,
    request_hash    text NOT NULL,
    response        jsonb NOT NULL,
    accepted_at     timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    archived_at     timestamptz
);
CREATE UNIQUE INDEX postings_idempotency ON postings (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX postings_unpublished ON postings (seq) WHERE published_at IS NULL;
CREATE INDEX postings_unarchived ON postings (accepted_at) WHERE archived_at IS NULL;

-- Every event of every topic, once. archive_seq is the archive's own order (the ledger's
-- reading order); (topic, partition, kafka_offset) is where it was first read.
CREATE TABLE archive (
    archive_seq   bigserial PRIMARY KEY,
    event_id      uuid UNIQUE NOT NULL,
    topic         text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset  bigint NOT NULL,
    kafka_key     bytea,
    value         bytea NOT NULL,
    headers       jsonb NOT NULL DEFAULT '[]',
    event_type    text NOT NULL,
    stream_id     text,
    stream_seq    bigint,
    recorded_at   timestamptz,
    archived_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_stream ON archive (stream_id, stream_seq);
CREATE INDEX archive_topic_order ON archive (topic, kafka_partition, archive_seq);

-- The ledger's input positions, committed in the same transaction as the rows they cover.
CREATE TABLE consumer_positions (
    consumer        text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, kafka_partition)
);

-- Double-entry journal: every money movement is lines summing to zero per event and currency.
CREATE TABLE journal_lines (
    event_id     uuid NOT NULL,
    line_no      smallint NOT NULL,
    account      text NOT NULL,
    amount_minor bigint NOT NULL,
    currency     char(3) NOT NULL,
    PRIMARY KEY (event_id, line_no)
);
CREATE INDEX journal_account ON journal_lines (account);

CREATE TABLE rm_needs (
    need_id       uuid PRIMARY KEY,
    org_id        text NOT NULL,
    title         text NOT NULL,
    kind          text NOT NULL,
    category      text NOT NULL,
    district      text NOT NULL,
    urgency       text NOT NULL,
    status        text NOT NULL,
    wanted        bigint NOT NULL,
    filled        bigint NOT NULL DEFAULT 0,
    unit          text NOT NULL,
    deadline      timestamptz NOT NULL,
    spec          jsonb NOT NULL,
    posted_event  uuid NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rm_needs_filter ON rm_needs (district, category, status);

CREATE TABLE rm_funds (
    fund_id     uuid PRIMARY KEY,
    org_id      text NOT NULL,
    name        text NOT NULL,
    currency    char(3) NOT NULL,
    spec        jsonb NOT NULL,
    opened_event uuid NOT NULL
);

CREATE TABLE rm_pledges (
    volunteer_id uuid PRIMARY KEY,
    org_id       text NOT NULL,
    pseudonym    text NOT NULL,
    district     text NOT NULL,
    spec         jsonb NOT NULL,
    pledged_event uuid NOT NULL
);

CREATE TABLE rm_matches (
    match_id     uuid PRIMARY KEY,
    need_id      uuid NOT NULL,
    supply       text NOT NULL,
    volunteer_id uuid,
    fund_id      uuid,
    amount_minor bigint,
    currency     char(3),
    minutes      integer,
    status       text NOT NULL,
    spec         jsonb NOT NULL,
    proposed_event uuid NOT NULL
);
CREATE INDEX rm_matches_need ON rm_matches (need_id);

-- Refusals an intake service decided after the gateway accepted the posting.
CREATE TABLE rm_refusals (
    posting_id  uuid PRIMARY KEY,
    reason      text NOT NULL,
    field       text,
    event_id    uuid NOT NULL
);

-- Liveness and readiness of each service process, for /healthz and the supervisor.
CREATE TABLE service_heartbeats (
    service     text PRIMARY KEY,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL,
    ready       boolean NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'
);
