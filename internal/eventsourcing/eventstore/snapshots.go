package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/pkg/events"
)

// Snapshot is an aggregate's state at Version, serialised as JSON in the
// shape SchemaVersion describes.
type Snapshot struct {
	StreamID        uuid.UUID
	StreamType      events.StreamType
	Version         int64
	SchemaVersion   int
	State           json.RawMessage
	EventRecordedAt time.Time
}

// SaveSnapshot stores s; saving the same stream and version twice keeps the newer state.
func (s *Store) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (stream_id, stream_type, version, schema_version, state, event_recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (stream_id, version) DO UPDATE SET schema_version = excluded.schema_version,
			state = excluded.state, event_recorded_at = excluded.event_recorded_at, created_at = now()`,
		postgres.UUID(snap.StreamID), string(snap.StreamType), snap.Version, snap.SchemaVersion, []byte(snap.State), snap.EventRecordedAt)
	if err != nil {
		return fmt.Errorf("save snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}

// LatestSnapshot returns the newest snapshot of a stream at or below
// maxVersion and recorded at or before until (zero: no bound). ok is false
// when there is none.
func (s *Store) LatestSnapshot(ctx context.Context, streamID uuid.UUID, maxVersion int64, until time.Time) (snap Snapshot, ok bool, err error) {
	if until.IsZero() {
		until = farFuture
	}
	var streamType string
	err = s.pool.QueryRow(ctx, `SELECT stream_id, stream_type, version, schema_version, state, event_recorded_at
		FROM snapshots WHERE stream_id = $1 AND version <= $2 AND event_recorded_at <= $3
		ORDER BY version DESC LIMIT 1`, postgres.UUID(streamID), maxVersion, until).
		Scan(&snap.StreamID, &streamType, &snap.Version, &snap.SchemaVersion, &snap.State, &snap.EventRecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("latest snapshot %s: %w", streamID, err)
	}
	snap.StreamType = events.StreamType(streamType)
	return snap, true, nil
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// StreamRange selects events of one stream: After < version <= Until (Until
// 0: no bound) and recorded_at <= At (zero: no bound).
type StreamRange struct {
	After int64
	Until int64
	At    time.Time
}
