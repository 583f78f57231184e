// Package idempotency stores the first response to each Idempotency-Key in
// PostgreSQL, inside the append transaction it describes.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/services/command-api/internal/app"
)

// Store implements app.Idempotency on the event store's database.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Lookup returns the recorded response for key.
func (s *Store) Lookup(ctx context.Context, key string) (app.Recorded, bool, error) {
	var (
		rec  app.Recorded
		body []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT request_hash, response FROM idempotency_keys WHERE key = $1`, key).Scan(&rec.RequestHash, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Recorded{}, false, nil
	}
	if err != nil {
		return app.Recorded{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	if err := json.Unmarshal(body, &rec.Result); err != nil {
		return app.Recorded{}, false, fmt.Errorf("decode idempotency record: %w", err)
	}
	return rec, true, nil
}

// Record stores rec under key in tx; app.ErrKeyTaken when the key exists.
func (s *Store) Record(ctx context.Context, tx pgx.Tx, key string, rec app.Recorded) error {
	body, err := json.Marshal(rec.Result)
	if err != nil {
		return fmt.Errorf("encode idempotency record: %w", err)
	}
	status := 200
	if rec.Result.Created {
		status = 201
	}
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (key, request_hash, status_code, response) VALUES ($1, $2, $3, $4)`,
		key, rec.RequestHash, status, body)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return app.ErrKeyTaken
	}
	if err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	return nil
}
