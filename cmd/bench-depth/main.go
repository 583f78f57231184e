// Command bench-depth prints, in one run, the event-sourcing depth figures:
//
//  1. loading a very long Account with and without a snapshot (cmd/bench-load);
//  2. rebuilding the Postgres read models from the event store beside a raw
//     COPY of the very rows the rebuild writes (projector-orders
//     bench-rebuild, which keeps its database for the next step);
//  3. rebuilding the Redis and Elasticsearch read models from that same
//     store with the services' own rebuild commands (projector-stats
//     rebuild, search-indexer rebuild), under key and index prefixes of
//     their own;
//
// then a summary in events of the store per second, and cleans up.
//
// Usage: go run ./cmd/bench-depth [-load-events 1000000] [-events 200000] [-runs 3]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/platform/envconfig"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-depth:", err)
		os.Exit(1)
	}
}

// prefix isolates the Redis keys and Elasticsearch indices of the run.
const prefix = "benchdepth"

func run() error {
	loadEvents := flag.Int("load-events", 1_000_000, "events in the long account stream")
	n := flag.Int("events", 200_000, "events in the store the read models are rebuilt from")
	runs := flag.Int("runs", 3, "rounds of the Postgres rebuild and its baselines")
	flag.Parse()
	ctx := context.Background()
	var env envconfig.Reader
	base := env.String("DATABASE_URL", envconfig.DefaultDatabaseURL)
	redisURL := env.String("REDIS_URL", envconfig.DefaultRedisURL)
	esURL := env.String("ELASTICSEARCH_URL", envconfig.DefaultElasticsearchURL)
	if err := env.Err(); err != nil {
		return err
	}
	var s summary

	section("1. loading a long account (cmd/bench-load)")
	out, err := stream(ctx, nil, "go", "run", "./cmd/bench-load", "-events", strconv.Itoa(*loadEvents))
	if err != nil {
		return err
	}
	s.loadReplay, s.loadSnapshot = find(out, `load without snapshot: median (\S+)`), find(out, `load with snapshot:\s+median (\S+)`)

	section("2. rebuilding the Postgres read models (projector-orders bench-rebuild)")
	out, err = stream(ctx, nil, "go", "run", "./services/projector-orders/cmd/bench-rebuild",
		"-events", strconv.Itoa(*n), "-runs", strconv.Itoa(*runs), "-keep")
	storeURL, dropStore, derr := storeDatabase(ctx, base)
	if derr != nil {
		return errors.Join(err, derr)
	}
	defer dropStore()
	if err != nil {
		return err
	}
	// bench-rebuild's table: name, best, median.
	s.orders, s.ordersMedian = find(out, `rebuild end to end \(events\)\s+(\d+)`), find(out, `rebuild end to end \(events\)\s+\d+\s+(\d+)`)
	s.copyIndexed, s.copyIndexedMedian = find(out, `indexes maintained \(events\)\s+(\d+)`), find(out, `indexes maintained \(events\)\s+\d+\s+(\d+)`)
	s.copyAfter, s.copyAfterMedian = find(out, `indexes built after \(events\)\s+(\d+)`), find(out, `indexes built after \(events\)\s+\d+\s+(\d+)`)

	section("3. rebuilding the Redis and Elasticsearch read models from the same store")
	for _, svc := range []string{"projector-stats", "search-indexer"} {
		if _, err := stream(ctx, nil, "scripts/build.sh", svc, "bin"); err != nil {
			return err
		}
	}
	defer cleanUp(ctx, redisURL, esURL)
	vars := []string{"DATABASE_URL=" + storeURL, "STATS_KEY_PREFIX=" + prefix + ":", "SEARCH_INDEX_PREFIX=" + prefix + "-"}
	if out, err = stream(ctx, vars, "bin/projector-stats", "rebuild"); err != nil {
		return err
	}
	s.stats = perSecond(*n, find(out, `namespace \S+ is live .*: \d+ events in (\S+),`))
	if out, err = stream(ctx, vars, "bin/search-indexer", "rebuild"); err != nil {
		return err
	}
	s.search = perSecond(*n, find(out, `rebuilt the order index from \d+ events in (\S+) `))

	s.print(*loadEvents, *n)
	return nil
}

type summary struct {
	loadReplay, loadSnapshot        string
	orders, copyIndexed, copyAfter  string // best runs
	ordersMedian, copyIndexedMedian string
	copyAfterMedian                 string
	stats, search                   string
}

func (s summary) print(loadEvents, n int) {
	section("summary")
	fmt.Printf("load a %d-event account:  %s by full replay (goal < 2 s),  %s from a snapshot (goal < 5 ms)\n",
		loadEvents, s.loadReplay, s.loadSnapshot)
	fmt.Printf("\nrebuild from a store of %d events, in store events per second (best run for Postgres):\n", n)
	fmt.Printf("  %-58s %10s\n", "Postgres read models (orders_view, accounts_balance, activity)", s.orders)
	fmt.Printf("  %-58s %10s\n", "Redis stats", s.stats)
	fmt.Printf("  %-58s %10s\n", "Elasticsearch order index", s.search)
	fmt.Printf("  %-58s %10s\n", "baseline: raw COPY of the same rows, indexes maintained", s.copyIndexed)
	fmt.Printf("  %-58s %10s\n", "baseline: raw COPY of the same rows, indexes built after", s.copyAfter)
	ratio := func(a, b string) string {
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil || y == 0 {
			return "?"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Printf("\nPostgres rebuild / COPY, best runs (medians): %s (%s) against the raw COPY into the model's tables as defined,\n",
		ratio(s.orders, s.copyIndexed), ratio(s.ordersMedian, s.copyIndexedMedian))
	fmt.Printf("  the goal's baseline (goal >= 0.5, and >= 50,000 events/s); %s (%s) against a COPY that builds every index after the data.\n",
		ratio(s.orders, s.copyAfter), ratio(s.ordersMedian, s.copyAfterMedian))
}

func section(title string) { fmt.Printf("\n=== %s\n\n", title) }

// stream runs a command with extra environment, copying its output to
// stdout and returning it.
func stream(ctx context.Context, vars []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), vars...)
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(io.TeeReader(pipe, os.Stdout))
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		return b.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return b.String(), nil
}

// find returns the first group of the last line matching pattern, or "?".
func find(out, pattern string) string {
	m := regexp.MustCompile(pattern).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return "?"
	}
	return m[len(m)-1][1]
}

func perSecond(events int, duration string) string {
	d, err := time.ParseDuration(duration)
	if err != nil || d <= 0 {
		return "?"
	}
	return strconv.FormatFloat(float64(events)/d.Seconds(), 'f', 0, 64)
}

// storeDatabase is the database bench-rebuild kept, and a function dropping it.
func storeDatabase(ctx context.Context, base string) (string, func(), error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/bench_rebuild"
	return u.String(), func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS bench_rebuild WITH (FORCE)")
	}, nil
}

// cleanUp deletes the run's Redis keys and Elasticsearch indices.
func cleanUp(ctx context.Context, redisURL, esURL string) {
	if opts, err := redis.ParseURL(redisURL); err == nil {
		rdb := redis.NewClient(opts)
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				rdb.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		rdb.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimRight(esURL, "/")+"/"+prefix+"-*", nil)
	if err == nil {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
