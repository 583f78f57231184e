package searchmodel

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/pkg/events"
)

// StoreStreamTypes resolves stream types from the event store (read-only):
// one query per batch, on the (stream_id, version) unique index.
type StoreStreamTypes struct {
	pool *pgxpool.Pool
}

// NewStoreStreamTypes returns a resolver over the event store's pool.
func NewStoreStreamTypes(pool *pgxpool.Pool) *StoreStreamTypes { return &StoreStreamTypes{pool: pool} }

// StreamTypes returns the type of every id that has events in the store;
// ids without events are absent from the result.
func (s *StoreStreamTypes) StreamTypes(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]events.StreamType, error) {
	rows, err := s.pool.Query(ctx, `SELECT stream_id, stream_type FROM events WHERE stream_id = ANY($1) AND version = 1`, ids)
	if err != nil {
		return nil, fmt.Errorf("stream types of %d streams: %w", len(ids), err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]events.StreamType, len(ids))
	for rows.Next() {
		var (
			id uuid.UUID
			t  string
		)
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("stream types: %w", err)
		}
		out[id] = events.StreamType(t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stream types of %d streams: %w", len(ids), err)
	}
	return out, nil
}
