// Command bench-load measures how long loading one very long Account takes,
// with and without a snapshot.
//
// It writes an account stream of -events events (default 1,000,000: an
// AccountOpened and deposits) with COPY into a fresh database, then loads the
// account through the same repository the command API uses: once by full
// replay, once from a snapshot 50 events behind the head.
//
// Usage: go run ./cmd/bench-load [-events 1000000] [-runs 5]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/testsupport/benchdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-load:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("events", 1_000_000, "events in the account stream")
	runs := flag.Int("runs", 5, "loads per variant (the median is printed)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the loads to this file")
	flag.Parse()
	ctx := context.Background()
	var env envconfig.Reader
	base := env.String("DATABASE_URL", envconfig.DefaultDatabaseURL)
	dbURL, drop, err := benchdb.FreshDatabase(ctx, base, "bench_load")
	if err != nil {
		return err
	}
	defer drop()
	if err := eventstore.Migrate(dbURL); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	id := uuid.New()
	start := time.Now()
	if err := writeStream(ctx, pool, id, *n); err != nil {
		return err
	}
	fmt.Printf("wrote %d events to one account stream in %s (COPY)\n", *n, time.Since(start).Round(time.Millisecond))

	store := eventstore.New(pool)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	repo := aggregate.NewRepository(store, aggregate.Accounts, 0, quiet, nil)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	replay, state, err := timeLoads(ctx, repo, id, *runs)
	if err != nil {
		return err
	}
	// A snapshot 50 events behind the head, as the command API would have
	// written with SNAPSHOT_EVERY_ACCOUNT=100.
	behind, err := repo.LoadAt(ctx, id, int64(*n-50), time.Time{})
	if err != nil {
		return err
	}
	if err := repo.Save(ctx, behind, time.Now()); err != nil {
		return err
	}
	withSnap, state2, err := timeLoads(ctx, repo, id, *runs)
	if err != nil {
		return err
	}
	if state.BalanceCents != state2.BalanceCents || state.Version != state2.Version {
		return fmt.Errorf("snapshot load %+v differs from replay %+v", state2, state)
	}
	fmt.Printf("load without snapshot: median %s (%.0f events/s)\n", replay.Round(time.Millisecond), float64(*n)/replay.Seconds())
	fmt.Printf("load with snapshot:    median %s (snapshot at v%d + 50 events)\n", withSnap.Round(10*time.Microsecond), *n-50)
	fmt.Printf("state: version %d, balance %d cents (identical both ways)\n", state.Version, state.BalanceCents)
	return nil
}

func timeLoads(ctx context.Context, repo *aggregate.Repository[account.State], id uuid.UUID, runs int) (time.Duration, account.State, error) {
	var (
		times []time.Duration
		state account.State
	)
	for i := 0; i < runs; i++ {
		start := time.Now()
		s, err := repo.Load(ctx, id)
		if err != nil {
			return 0, s, err
		}
		times = append(times, time.Since(start))
		state = s
	}
	slices.Sort(times)
	return times[len(times)/2], state, nil
}

func writeStream(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID, n int) error {
	opened, _ := json.Marshal(map[string]any{"owner": "bench", "initial_balance_cents": 0, "currency": "EUR"})
	deposit := []byte(`{"amount_cents":100,"source":"bench"}`)
	meta := []byte(`{}`)
	now := time.Now().UTC()
	rows := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		typ, data := "FundsDeposited", deposit
		if i == 0 {
			typ, data = "AccountOpened", opened
		}
		return []any{uuid.New(), "account", id, int64(i + 1), typ, 1, data, meta, now}, nil
	})
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"event_id", "stream_type", "stream_id", "version", "type", "schema_version", "data", "metadata", "occurred_at"}, rows)
	if err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	// A store that has been running for a while is vacuumed and analysed:
	// without it the first loads would also pay for setting the hint bits
	// of a million freshly copied rows, racing autovacuum doing the same.
	_, err = pool.Exec(ctx, "VACUUM ANALYZE events")
	return err
}
