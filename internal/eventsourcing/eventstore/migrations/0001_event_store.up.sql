-- The event store: append-only, one row per event.
--
-- position is unique and assigned at insert. Positions are NOT committed in
-- numeric order (a transaction that took position 10 may commit after the
-- one that took 11), so readers that tail the store never follow position
-- alone: they follow (transaction_id, position) and stop below the oldest
-- transaction still in flight. See eventstore.ReadAll.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_type     text        NOT NULL,
    stream_id       uuid        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    type            text        NOT NULL,
    schema_version  int         NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    -- The optimistic-concurrency guard: two writers can never both append
    -- the same version of a stream.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX events_commit_order ON events (transaction_id, position);
CREATE INDEX events_stream_recorded ON events (stream_id, recorded_at);
CREATE INDEX events_stream_type ON events (stream_type, stream_id);

-- Events are facts: corrections are new events, never edits.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

CREATE TABLE snapshots (
    stream_id         uuid        NOT NULL,
    stream_type       text        NOT NULL,
    version           bigint      NOT NULL,
    schema_version    int         NOT NULL,
    state             jsonb       NOT NULL,
    -- recorded_at of the event at this version, so as-of queries can pick
    -- the newest snapshot at or before an instant.
    event_recorded_at timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, version)
);

-- How far each tailing reader (the outbox relay) got, in commit-safe order.
CREATE TABLE checkpoints (
    name           text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key records, written in the same transaction as the append
-- they describe, so a retry either finds the first response or appends.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash text        NOT NULL,
    status_code  int         NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
