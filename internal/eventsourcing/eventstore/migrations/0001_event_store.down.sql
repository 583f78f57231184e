DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS checkpoints;
DROP TABLE IF EXISTS snapshots;
DROP TABLE IF EXISTS events;
DROP FUNCTION IF EXISTS events_append_only();
