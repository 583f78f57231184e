ALTER TABLE events
    ALTER COLUMN data TYPE jsonb USING data::jsonb,
    ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb,
    ALTER COLUMN metadata SET DEFAULT '{}';
