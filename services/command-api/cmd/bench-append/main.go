// Command bench-append measures append throughput on this machine, each
// figure beside a raw PostgreSQL baseline measured in the same run:
//
//   - raw:   plain single-row INSERTs of the same row shape into a copy of the
//     events table (same columns, defaults and indexes, no guard);
//   - store: eventstore.Append of one event (version guard included);
//   - http:  POST /v1/orders through the real command API (decode, validate,
//     decide, append, respond) with a Go load generator over loopback.
//
// Usage: go run ./services/command-api/cmd/bench-append [-duration 5s] [-concurrency 1,16,64]
// It creates and drops its own database on DATABASE_URL's server.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/testsupport/benchdb"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/config"
	"github.com/escqrs/platform/services/command-api/internal/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-append:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 5*time.Second, "measuring time per figure")
	levels := flag.String("concurrency", "1,16,64", "comma-separated concurrency levels")
	flag.Parse()
	var conc []int
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -concurrency %q", *levels)
		}
		conc = append(conc, n)
	}
	ctx := context.Background()
	var env envconfig.Reader
	base := env.String("DATABASE_URL", envconfig.DefaultDatabaseURL)
	dbURL, drop, err := benchdb.FreshDatabase(ctx, base, "bench_append")
	if err != nil {
		return err
	}
	defer drop()
	if err := eventstore.Migrate(dbURL); err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 80
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_events (LIKE events INCLUDING ALL)`); err != nil {
		return fmt.Errorf("create baseline table: %w", err)
	}
	store := eventstore.New(pool)

	api, stopAPI, err := startAPI(ctx, dbURL)
	if err != nil {
		return err
	}
	defer stopAPI()

	fmt.Printf("append throughput, %s per figure, PostgreSQL at %s\n\n", *duration, benchdb.Redact(base))
	fmt.Printf("%-12s %14s %14s %8s %14s %8s\n", "concurrency", "raw INSERT/s", "store ev/s", "store%", "HTTP cmd/s", "HTTP%")
	for _, c := range conc {
		raw := measure(ctx, c, *duration, rawInsert(pool))
		st := measure(ctx, c, *duration, storeAppend(store))
		web := measure(ctx, c, *duration, httpPlaceOrder(api, c))
		fmt.Printf("%-12d %14.0f %14.0f %7.0f%% %14.0f %7.0f%%\n", c, raw, st, 100*st/raw, web, 100*web/raw)
	}
	fmt.Println("\nraw: single-row INSERT (autocommit) into a copy of events with the same columns, defaults and indexes.")
	fmt.Println("store: eventstore.Append of one event to a worker-owned stream (version guard, one statement).")
	fmt.Println("HTTP: POST /v1/orders to the in-process command API over loopback (relay off, so Kafka is not in the figure).")
	return nil
}

// op performs one operation for worker w; it returns how many units it did.
type op func(ctx context.Context, worker int) (int, error)

func measure(ctx context.Context, concurrency int, d time.Duration, f op) float64 {
	// A short warm-up fills connection pools and caches.
	run := func(d time.Duration) (int64, time.Duration) {
		var total atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(d)
		for w := 0; w < concurrency; w++ {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					n, err := f(ctx, w)
					if err != nil {
						fmt.Fprintln(os.Stderr, "error:", err)
						return
					}
					total.Add(int64(n))
				}
			})
		}
		wg.Wait()
		return total.Load(), time.Since(start)
	}
	run(d / 5)
	n, elapsed := run(d)
	return float64(n) / elapsed.Seconds()
}

var sampleData = []byte(`{"amount_cents":1250,"source":"card"}`)

func rawInsert(pool *pgxpool.Pool) op {
	return func(ctx context.Context, _ int) (int, error) {
		_, err := pool.Exec(ctx, `INSERT INTO raw_events (event_id, stream_type, stream_id, version, type, schema_version, data, metadata, occurred_at)
			VALUES ($1, 'account', $2, 1, 'FundsDeposited', 1, $3, '{}', now())`, uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), sampleData)
		return 1, err
	}
}

func storeAppend(store *eventstore.Store) op {
	type stream struct {
		id      uuid.UUID
		version int64
	}
	var mu sync.Mutex
	streams := map[int]*stream{}
	return func(ctx context.Context, w int) (int, error) {
		mu.Lock()
		s, ok := streams[w]
		if !ok || s.version >= 1000 {
			s = &stream{id: uuid.Must(uuid.NewV7())}
			streams[w] = s
		}
		mu.Unlock()
		_, err := store.Append(ctx, eventstore.AppendRequest{StreamType: events.StreamAccount, StreamID: s.id, ExpectedVersion: s.version,
			Events: []eventstore.NewEvent{{Data: events.FundsDeposited{AmountCents: 1250, Source: "card"}}}})
		s.version++
		return 1, err
	}
}

func httpPlaceOrder(base string, concurrency int) op {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency}, Timeout: 10 * time.Second}
	body := []byte(`{"customer_id":"` + uuid.NewString() + `","currency":"EUR","items":[{"sku":"LAMP-1","name":"Desk lamp","quantity":1,"unit_price_cents":1250}]}`)
	return func(ctx context.Context, _ int) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/orders", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("POST /v1/orders: %s", resp.Status)
		}
		return 1, nil
	}
}

func startAPI(ctx context.Context, dbURL string) (string, func(), error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ln.Close()
	cfg.DatabaseURL, cfg.RelayEnabled, cfg.HTTPAddr, cfg.DBMaxConns = dbURL, false, ln.Addr().String(), 80
	srv, err := server.New(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return "", nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx) }()
	base := "http://" + cfg.HTTPAddr
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			cancel()
			return "", nil, errors.New("command API did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return base, func() { cancel(); <-done }, nil
}
