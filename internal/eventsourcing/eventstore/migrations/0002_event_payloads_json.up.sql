-- Event payloads and metadata are stored as json (the text as written),
-- not jsonb.
--
-- The store never looks inside a payload: no query filters on it and no
-- index covers it. It writes each payload once and reads it back whole,
-- over and over: every aggregate load replays a stream, the relay reads
-- every event, a rebuild reads the whole store. jsonb parses the text into
-- its binary form on the way in and prints it back to text on every way
-- out; for a replay of a 1,000,000-event stream that printing was a third
-- of the time (cmd/bench-load: 1.9-2.0 s with jsonb, 1.3 s with json on the
-- same data). json validates the text on the way in and hands it back as
-- written: the stored event is byte for byte the one recorded, as an audit
-- trail should be, rather than jsonb's normalised rewrite of it.
--
-- The read models' columns (orders_view.items, ...) stay jsonb: they are
-- documents a query may look into.
--
-- ALTER ... TYPE rewrites the table under an ACCESS EXCLUSIVE lock: on a
-- large existing store, run it in a maintenance window.
ALTER TABLE events
    ALTER COLUMN data TYPE json USING data::json,
    ALTER COLUMN metadata TYPE json USING metadata::json,
    ALTER COLUMN metadata SET DEFAULT '{}';
