// Command snapshots (re)builds the snapshots of every stream of one type:
// each stream is replayed in full (ignoring its existing snapshots, which may
// be of an older schema) and a snapshot of its current state is written.
// Run it after changing an aggregate's snapshot schema, or to give long
// streams written before snapshots were enabled a starting point.
//
// Usage: go run ./cmd/snapshots -stream-type account|order [-min-events 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/pkg/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "snapshots:", err)
		os.Exit(1)
	}
}

func run() error {
	streamType := flag.String("stream-type", "", "account or order")
	minEvents := flag.Int64("min-events", 1, "skip streams shorter than this")
	flag.Parse()
	st := events.StreamType(*streamType)
	if !st.Valid() {
		return fmt.Errorf("-stream-type must be account or order, got %q", *streamType)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var env envconfig.Reader
	pool, err := pgxpool.New(ctx, env.String("DATABASE_URL", envconfig.DefaultDatabaseURL))
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool)
	rows, err := pool.Query(ctx, `SELECT stream_id, max(version) FROM events WHERE stream_type = $1 GROUP BY stream_id HAVING max(version) >= $2`, string(st), *minEvents)
	if err != nil {
		return fmt.Errorf("list %s streams: %w", st, err)
	}
	type stream struct {
		id      uuid.UUID
		version int64
	}
	var streams []stream
	for rows.Next() {
		var s stream
		if err := rows.Scan(&s.id, &s.version); err != nil {
			return err
		}
		streams = append(streams, s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Printf("%d %s streams with at least %d events\n", len(streams), st, *minEvents)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start, last := time.Now(), time.Now()
	for i, s := range streams {
		var err error
		switch st {
		case events.StreamAccount:
			err = snapshot(ctx, store, aggregate.Accounts, s.id, quiet)
		case events.StreamOrder:
			err = snapshot(ctx, store, aggregate.Orders, s.id, quiet)
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.id, err)
		}
		if time.Since(last) > time.Second || i == len(streams)-1 {
			rate := float64(i+1) / time.Since(start).Seconds()
			fmt.Printf("%d/%d streams  %.0f streams/s  ETA %.0fs\n", i+1, len(streams), rate, float64(len(streams)-i-1)/rate)
			last = time.Now()
		}
	}
	return nil
}

// snapshot replays one stream from its first event and saves its state.
func snapshot[S any](ctx context.Context, store *eventstore.Store, kind aggregate.Kind[S], id uuid.UUID, log *slog.Logger) error {
	var (
		state    S
		recorded time.Time
	)
	err := store.ScanStream(ctx, id, eventstore.StreamRange{}, func(e events.Envelope) error {
		state, recorded = kind.Evolve(state, e), e.RecordedAt
		return nil
	})
	if err != nil {
		return err
	}
	return aggregate.NewRepository(store, kind, 0, log, nil).Save(ctx, state, recorded)
}
