// Command bench-rebuild measures how fast projector-orders rebuilds its
// Postgres read models from the event store, against a raw COPY of the same
// number of rows.
//
// It creates a fresh database, writes -events realistic events with COPY
// (accounts and orders decided by the domain aggregates, several events per
// stream, interleaved), then measures:
//
//   - read: the store read alone (rebuild.Replay into a sink that drops
//     everything), through eventstore.Store.ReadAll and through the
//     rebuild's rebuilder.Reader: the ceiling for any rebuild;
//   - copy: a raw binary COPY of the very rows the rebuild wrote (every row
//     of orders_view, accounts_balance and account_activity) into empty
//     tables of the same definition: with their indexes maintained during
//     the COPY, and with the indexes built after the data (what the
//     rebuild does). Its rate is in the rebuild's events per second (the
//     events the rows were folded from, over the COPY's time), so the two
//     compare as durations;
//   - rebuild: rebuilder.Rebuild end to end (prepare, fill, final rows,
//     indexes, statistics, swap, catch-up, drop), and the fill alone;
//
// and checks that the rebuilt tables equal the fold of the whole store.
// The measurements alternate over -runs rounds, and the best and median of
// each are printed: on a shared machine a burst of load lands on one run,
// not on one side of the comparison.
//
// Usage: go run ./services/projector-orders/cmd/bench-rebuild [-events 200000] [-runs 3] [-v]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/internal/testsupport/benchdb"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
	"github.com/escqrs/platform/services/projector-orders/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-orders/internal/workload"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rebuild:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("events", 200_000, "events in the store")
	runs := flag.Int("runs", 3, "rounds of baselines and rebuild (each rebuild replaces the last)")
	batch := flag.Int("batch", 5000, "events per read of the store")
	verify := flag.Bool("verify", true, "compare the rebuilt tables with the fold of the whole store")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the rebuilds to this file")
	memprofile := flag.String("memprofile", "", "write a profile of what the rebuilds allocate to this file")
	verbose := flag.Bool("v", false, "log the rebuild's steps")
	keep := flag.Bool("keep", false, "keep the database bench_rebuild afterwards")
	flag.Parse()
	ctx := context.Background()
	var env envconfig.Reader
	base := env.String("DATABASE_URL", envconfig.DefaultDatabaseURL)
	dbURL, drop, err := benchdb.FreshDatabase(ctx, base, "bench_rebuild")
	if err != nil {
		return err
	}
	if !*keep {
		defer drop()
	}
	if err := eventstore.Migrate(dbURL); err != nil {
		return err
	}
	if err := ordersdb.Migrate(dbURL); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	evs := workload.New(1).Take(*n)
	start := time.Now()
	for lo := 0; lo < len(evs); lo += 50_000 {
		if err := workload.CopyEvents(ctx, pool, evs[lo:min(lo+50_000, len(evs))]); err != nil {
			return err
		}
	}
	// A store that has been running for a while is vacuumed and analysed.
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		return err
	}
	var accountEvents, streams int
	seen := map[[16]byte]bool{}
	for _, e := range evs {
		if e.StreamType == events.StreamAccount {
			accountEvents++
		}
		if !seen[e.StreamID] {
			seen[e.StreamID] = true
			streams++
		}
	}
	fmt.Printf("store: %d events (%d account, %d order) in %d streams, written in %s\n",
		len(evs), accountEvents, len(evs)-accountEvents, streams, time.Since(start).Round(time.Millisecond))

	store := eventstore.New(pool)
	logOut := io.Discard
	if *verbose {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))

	// The baselines and the rebuilds alternate, so that a burst of load on a
	// shared machine does not land on one side only; the best run of each
	// is compared, and the median shown.
	var reads, leanReads, copyIndexed, copyIndexesAfter, totals, fills []float64
	var dumps map[string][]byte
	var res rebuilder.Result
	rb := rebuilder.New(store, pool, log, rebuilder.WithBatchSize(*batch))
	for i := range *runs {
		r, err := measureRead(ctx, store, *n)
		if err != nil {
			return err
		}
		reads = append(reads, r)
		lean := rebuilder.NewReader(store)
		r, err = measureRead(ctx, lean, *n)
		lean.Close()
		if err != nil {
			return err
		}
		leanReads = append(leanReads, r)
		if dumps != nil { // the rows of the previous rebuild
			for _, b := range []struct {
				out  *[]float64
				mode copyMode
			}{{&copyIndexed, indexesMaintained}, {&copyIndexesAfter, indexesAfter}} {
				r, err := measureCopy(ctx, pool, dumps, *n, b.mode)
				if err != nil {
					return err
				}
				*b.out = append(*b.out, r)
			}
		}

		stopProfile, err := startProfile(*cpuprofile, i)
		if err != nil {
			return err
		}
		var tr rebuild.Tracker
		start := time.Now()
		res, err = rb.Rebuild(ctx, &tr, nil)
		stopProfile()
		if err != nil {
			return err
		}
		elapsed := time.Since(start)
		totals = append(totals, float64(res.Events)/elapsed.Seconds())
		fills = append(fills, float64(res.Events)/res.FillDuration.Seconds())
		fmt.Printf("rebuild %d: %d events in %s (fill %s, final rows + indexes + statistics %s, swap transaction %s, catch-up %s): %.0f events/s end to end, %.0f events/s fill\n",
			i+1, res.Events, elapsed.Round(time.Millisecond), res.FillDuration.Round(time.Millisecond),
			res.FinishDuration.Round(time.Millisecond), res.SwapDuration.Round(100*time.Microsecond),
			tr.Get().FinishedAt.Sub(tr.Get().SwappedAt).Round(100*time.Microsecond), totals[i], fills[i])
		if dumps == nil {
			if dumps, err = dumpTables(ctx, pool); err != nil {
				return err
			}
			r1, err := measureCopy(ctx, pool, dumps, *n, indexesMaintained)
			if err != nil {
				return err
			}
			r2, err := measureCopy(ctx, pool, dumps, *n, indexesAfter)
			if err != nil {
				return err
			}
			copyIndexed, copyIndexesAfter = append(copyIndexed, r1), append(copyIndexesAfter, r2)
		}
	}
	if *memprofile != "" {
		if err := writeAllocs(*memprofile); err != nil {
			return err
		}
	}
	fmt.Printf("rows written: %d orders_view, %d accounts_balance, %d account_activity\n", res.Orders, res.Accounts, res.Activity)
	fmt.Printf("\n%d runs; load average now %s\n", *runs, loadAverage())
	best := slices.Max(totals)
	fmt.Printf("%-60s %12s %12s %10s\n", "", "best /s", "median /s", "rebuild/x")
	line := func(name string, xs []float64) {
		fmt.Printf("%-60s %12.0f %12.0f %10.2f\n", name, slices.Max(xs), median(xs), best/slices.Max(xs))
	}
	line("store read alone, eventstore.Store.ReadAll (events)", reads)
	line("store read alone, rebuilder.Reader (events)", leanReads)
	line("raw COPY of the same rows, indexes maintained (events)", copyIndexed)
	line("raw COPY of the same rows, indexes built after (events)", copyIndexesAfter)
	line("rebuild fill (events)", fills)
	line("rebuild end to end (events)", totals)

	if *verify {
		if err := verifyTables(ctx, store, pool); err != nil {
			return err
		}
		fmt.Println("verified: the rebuilt tables equal the fold of the whole store")
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// startProfile profiles the CPU of run i (all runs into one file is not
// possible: a profile is one file per start).
func startProfile(path string, i int) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, i+1))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeAllocs writes the allocation profile of the whole run (go tool
// pprof -sample_index=alloc_space).
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// measureRead drains the store into a sink that keeps nothing.
func measureRead(ctx context.Context, store rebuild.Store, n int) (float64, error) {
	var tr rebuild.Tracker
	start := time.Now()
	if err := rebuild.Replay(ctx, store, discard{}, 0, &tr, rebuild.Options{}); err != nil {
		return 0, err
	}
	if got := tr.Get().Events; got != int64(n) {
		return 0, fmt.Errorf("read %d events, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

type discard struct{}

func (discard) HandleBatch(context.Context, []events.Envelope) error { return nil }

type copyMode int

const (
	indexesMaintained copyMode = iota // the tables' indexes exist during the COPY
	indexesAfter                      // the indexes are built after the data, as the rebuild does
)

// modelTables are the tables a rebuild writes.
var modelTables = []string{"orders_view", "accounts_balance", "account_activity"}

// dumpTables reads every row of the live model tables in COPY's binary format.
func dumpTables(ctx context.Context, pool *pgxpool.Pool) (map[string][]byte, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	out := map[string][]byte{}
	for _, t := range modelTables {
		var buf bytes.Buffer
		if _, err := conn.Conn().PgConn().CopyTo(ctx, &buf, "COPY "+t+" TO STDOUT (FORMAT binary)"); err != nil {
			return nil, fmt.Errorf("dump %s: %w", t, err)
		}
		out[t] = buf.Bytes()
	}
	return out, nil
}

// measureCopy COPYs the dumped rows into empty copies of the model tables
// and returns the rate in events (n, the events the rows come from) per
// second of COPY, index building included.
func measureCopy(ctx context.Context, pool *pgxpool.Pool, dumps map[string][]byte, n int, mode copyMode) (float64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var indexes []string
	for _, t := range modelTables {
		like := "INCLUDING ALL"
		if mode == indexesAfter {
			like = "INCLUDING ALL EXCLUDING INDEXES"
			rows, err := conn.Query(ctx, "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1", t)
			if err != nil {
				return 0, err
			}
			defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return 0, err
			}
			for _, d := range defs { // CREATE [UNIQUE] INDEX name ON public.t USING ... -> an unnamed index on the copy
				_, rest, _ := strings.Cut(d, " ON ")
				_, using, _ := strings.Cut(rest, " USING ")
				unique := ""
				if strings.HasPrefix(d, "CREATE UNIQUE") {
					unique = "UNIQUE "
				}
				indexes = append(indexes, fmt.Sprintf("CREATE %sINDEX ON copy_%s USING %s", unique, t, using))
			}
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS copy_%s; CREATE TABLE copy_%s (LIKE %s %s)", t, t, t, like)); err != nil {
			return 0, err
		}
		defer pool.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS copy_"+t) //nolint:errcheck // scratch
	}
	start := time.Now()
	for _, t := range modelTables {
		if _, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(dumps[t]), "COPY copy_"+t+" FROM STDIN (FORMAT binary)"); err != nil {
			return 0, fmt.Errorf("copy %s: %w", t, err)
		}
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, ix); err != nil {
			return 0, fmt.Errorf("%s: %w", ix, err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// verifyTables compares the live tables with Project over the whole store.
func verifyTables(ctx context.Context, store rebuild.Store, pool *pgxpool.Pool) error {
	var all []events.Envelope
	var tr rebuild.Tracker
	if err := rebuild.Replay(ctx, store, collect{&all}, 0, &tr, rebuild.Options{}); err != nil {
		return err
	}
	want, err := ordersmodel.Project(all)
	if err != nil {
		return err
	}
	got, err := ordersmodel.Dump(ctx, pool)
	if err != nil {
		return err
	}
	if diff := got.Diff(want); len(diff) > 0 {
		return fmt.Errorf("the rebuilt tables differ from the fold of the store (%d differences), first: %s", len(diff), diff[0])
	}
	return nil
}

type collect struct{ out *[]events.Envelope }

func (c collect) HandleBatch(_ context.Context, b []events.Envelope) error {
	*c.out = append(*c.out, b...)
	return nil
}
