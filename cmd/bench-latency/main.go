// Command bench-latency measures eventual consistency as a client sees it:
// it sends a steady rate of POST /v1/orders to a running system (make run)
// and, for a sample of them, times from the 201 until the new order is
// visible through the query API in each read model:
//
//   - orders_view (PostgreSQL): GET /v1/orders/{id}?min_version=1 answers
//     200 (the query API holds the read until the row is committed)
//   - stats (Redis):            GET /v1/customers/{customer}/stats?order_id={id}&min_version=1
//     answers 200 (likewise, until the stats reflect the order)
//   - search (Elasticsearch):   GET /v1/search/orders finds it
//
// Every order has a customer of its own, so visibility is unambiguous.
// Sampled orders carry a SKU unique to the run; one watcher searches for it
// every 50 ms and marks every sample it finds, so the search is measured
// with a fixed, small number of queries however far the index falls behind
// (one query per late sample would bury Elasticsearch under the polling of
// the very backlog it measures).
//
// A freshly started stack is slower than one that has run under load for a
// while: Kafka and Elasticsearch run on the JVM, whose compiler turns their
// hot paths into optimised code only after they have run many times, and
// on two busy cores it gets little CPU to do so. -warmup sends the same
// load, untimed, for that long first, then waits until every projection
// has caught up before the measured run starts.
//
// It also prints where the time goes on the server side, for every event of
// the run (not only the sampled ones): the relay's and each projector's
// latency histograms (relay_publish_delay_seconds and
// projector_apply_latency_seconds, both from the event's recorded_at), read
// from the services' /metrics before and after the run.
//
// Usage: go run ./cmd/bench-latency [-rate 500] [-duration 60s] [-sample 0.02] [-warmup 0] [-timeline 5s]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

func main() {
	command := flag.String("command-api", "http://127.0.0.1:8080", "command API base URL")
	query := flag.String("query-api", "http://127.0.0.1:8081", "query API base URL")
	rate := flag.Int("rate", 500, "commands per second")
	duration := flag.Duration("duration", 60*time.Second, "how long to send")
	sample := flag.Float64("sample", 0.02, "fraction of commands whose visibility is timed")
	timeout := flag.Duration("timeout", 10*time.Second, "give up on a sample after this long")
	warmup := flag.Duration("warmup", 0, "first send the same load untimed for this long (see the package comment)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this load generator to this file")
	projectorMetrics := flag.String("projector-metrics", "http://127.0.0.1:9101/metrics,http://127.0.0.1:9102/metrics,http://127.0.0.1:9103/metrics",
		"the /metrics of projector-orders, projector-stats and search-indexer, for the server-side breakdown (empty: none)")
	timeline := flag.Duration("timeline", 0, "also print the slowest sample of each model per window of this length (e.g. 5s): is the tail spread out or in bursts?")
	flag.Parse()
	// The load generator shares the cores with the system it measures. On
	// two or fewer it takes one, as scripts/run.sh gives each service: at
	// 500 commands/s its CPU fell from ~25% to ~19% of a core, most of the
	// difference idle threads looking for work.
	if os.Getenv("GOMAXPROCS") == "" && runtime.NumCPU() <= 2 {
		runtime.GOMAXPROCS(1)
	}
	if *rate < 1 || *sample <= 0 || *sample > 1 || *duration <= 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench-latency: -rate must be positive, -sample in (0, 1], -duration positive, -warmup not negative")
		os.Exit(2)
	}
	b := &bench{commandURL: *command, queryURL: *query, timeout: *timeout,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		probe:  "PROBE-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-latency:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *warmup > 0 {
		if err := b.warmUp(*rate, *warmup); err != nil {
			fmt.Fprintln(os.Stderr, "bench-latency:", err)
			os.Exit(1)
		}
	}
	b.window = *timeline
	var metricURLs []string
	if *projectorMetrics != "" {
		metricURLs = strings.Split(*projectorMetrics, ",")
	}
	b.stages = stages(*command, metricURLs)
	if err := b.run(*rate, *duration, *sample); err != nil {
		fmt.Fprintln(os.Stderr, "bench-latency:", err)
		os.Exit(1)
	}
}

type bench struct {
	commandURL, queryURL string
	timeout              time.Duration
	client               *http.Client
	probe                string // the SKU of sampled orders

	window time.Duration // -timeline
	start  time.Time     // of the measured run
	stages []stage       // server-side histograms to report

	mu       sync.Mutex
	observed [3][]time.Duration // orders_view, stats, search
	ackedAt  [3][]time.Duration // since start, for each observed
	timeouts [3]int
}

var modelNames = [3]string{"orders_view (postgres)", "customer stats (redis)", "search (elasticsearch)"}

// retryEvery is how soon a sample's read is sent again when the last one
// got no answer at all.
const retryEvery = 5 * time.Millisecond

// searchEvery is how often the search watcher looks for new samples.
const searchEvery = 50 * time.Millisecond

func (b *bench) run(rate int, duration time.Duration, sample float64) error {
	ctx := context.Background()
	every := int64(max(1, 1/sample))
	search := newSearchWatch(b)
	watchDone := make(chan struct{})
	sendingDone := make(chan struct{})
	go func() { search.run(ctx, sendingDone); close(watchDone) }()

	before := scrape(ctx, b.client, b.stages)
	fmt.Printf("sending %d POST /v1/orders per second for %s, timing 1 in %d...\n", rate, duration, every)
	b.start = time.Now()
	sent, failed, sending := b.send(rate, duration, func(n int64) error {
		timed := n%every == 0
		customer := uuid.NewString()
		sentAt := time.Now()
		sku := "LAT-1"
		if timed {
			sku = b.probe
		}
		id, err := b.placeOrder(ctx, customer, sku)
		if err != nil || !timed {
			return err
		}
		acked := time.Now()
		search.add(id, sentAt, acked)
		var inner sync.WaitGroup
		inner.Go(func() { b.awaitVersion(ctx, 0, acked, "/v1/orders/"+id+"?min_version=1") })
		inner.Go(func() {
			b.awaitVersion(ctx, 1, acked, "/v1/customers/"+customer+"/stats?order_id="+id+"&min_version=1")
		})
		inner.Wait()
		return nil
	})
	close(sendingDone)
	<-watchDone
	fmt.Printf("sent %d commands in %s (%d failed), timed %d\n\n", sent, sending.Round(time.Millisecond), failed, sent/every)
	fmt.Printf("%-26s %8s %8s %8s %8s %8s %8s\n", "201 -> visible in", "samples", "p50", "p95", "p99", "max", "timeouts")
	for i, name := range modelNames {
		l := slices.Sorted(slices.Values(b.observed[i])) // a copy: the timeline needs the order

		q := func(p float64) string {
			if len(l) == 0 {
				return "-"
			}
			return l[min(len(l)-1, int(p*float64(len(l))))].Round(100 * time.Microsecond).String()
		}
		fmt.Printf("%-26s %8d %8s %8s %8s %8s %8d\n", name, len(l), q(0.50), q(0.95), q(0.99), q(1), b.timeouts[i])
	}
	if b.window > 0 {
		b.printTimeline()
	}
	if len(b.stages) > 0 {
		printBreakdown(b.stages, before, scrape(ctx, b.client, b.stages))
	}
	fmt.Printf("\nResolution: orders_view and Redis samples are one ?min_version read each, which the query API\n")
	fmt.Printf("answers when the row commits (orders_view) or at its next look at Redis (every READ_POLL_INTERVAL);\n")
	fmt.Printf("search is polled every %s for all samples at once. Figures are upper bounds within that.\n", searchEvery)
	return nil
}

// send calls command(n) for n = 1, 2, ... at rate per second for duration,
// each on a goroutine of its own, and returns when all have returned: how
// many were sent, how many failed, and how long sending took. Command n
// goes out at start + n/rate: a sender that fell behind catches up instead
// of silently lowering the rate (as a Ticker, which drops ticks, would).
func (b *bench) send(rate int, duration time.Duration, command func(n int64) error) (sent, failed int64, sending time.Duration) {
	interval := time.Second / time.Duration(rate)
	var (
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for deadline := start.Add(duration); time.Now().Before(deadline); {
		sent++
		n := sent
		time.Sleep(time.Until(start.Add(time.Duration(n-1) * interval)))
		wg.Go(func() {
			if command(n) != nil {
				failures.Add(1)
			}
		})
	}
	sending = time.Since(start)
	wg.Wait()
	return sent, failures.Load(), sending
}

// warmUp sends rate orders per second for duration without timing them,
// a minute at a time with a line after each, then waits until every
// projection has caught up with the event store.
func (b *bench) warmUp(rate int, duration time.Duration) error {
	ctx := context.Background()
	fmt.Printf("warming up: %d POST /v1/orders per second for %s, untimed\n", rate, duration)
	for done := time.Duration(0); done < duration; {
		part := min(time.Minute, duration-done)
		sent, failed, _ := b.send(rate, part, func(int64) error {
			_, err := b.placeOrder(ctx, uuid.NewString(), "LAT-1")
			return err
		})
		done += part
		fmt.Printf("  %s of %s: %d commands, %d failed\n", done, duration, sent, failed)
	}
	start := time.Now()
	for {
		lag, err := b.projectionLag(ctx)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if lag == 0 {
			fmt.Printf("  every projection caught up %s after the warm-up load\n\n", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("warm-up: the projections still lag by %d events 5 minutes after the load", lag)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// projectionLag is the largest lag_events of GET /v1/projections.
func (b *bench) projectionLag(ctx context.Context) (int64, error) {
	code, body, err := b.get(ctx, "/v1/projections")
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/projections: status %d, %v", code, err)
	}
	var res struct {
		Projections []struct {
			LagEvents int64 `json:"lag_events"`
		} `json:"projections"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return 0, fmt.Errorf("GET /v1/projections: %w", err)
	}
	var lag int64
	for _, p := range res.Projections {
		lag = max(lag, p.LagEvents)
	}
	return lag, nil
}

func (b *bench) placeOrder(ctx context.Context, customer, sku string) (string, error) {
	body := []byte(`{"customer_id":"` + customer + `","currency":"EUR","items":[{"sku":"` + sku +
		`","name":"Latency probe","quantity":1,"unit_price_cents":100}]}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.commandURL+"/v1/orders", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var created struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("place order: status %d, %v", resp.StatusCode, err)
	}
	return created.ID, nil
}

// awaitVersion sends path, a read with ?min_version that waits on the
// server until the model reflects the order, asking again while it answers
// 202, and records the time since acked.
func (b *bench) awaitVersion(ctx context.Context, model int, acked time.Time, path string) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	// Within the client's own timeout; a 202 after it means "ask again".
	wait := "&wait=" + min(b.timeout, b.client.Timeout-time.Second).String()
	for {
		code, _, err := b.get(ctx, path+wait)
		switch {
		case err == nil && code == http.StatusOK:
			b.record(model, acked, time.Since(acked))
			return
		case ctx.Err() != nil, err == nil && code != http.StatusAccepted:
			b.timedOut(model)
			return
		case err != nil: // not answered at all: ask again shortly
			select {
			case <-ctx.Done():
			case <-time.After(retryEvery):
			}
		}
	}
}

// timedOut counts a sample of model that never became visible.
func (b *bench) timedOut(model int) {
	b.mu.Lock()
	b.timeouts[model]++
	b.mu.Unlock()
}

func (b *bench) record(model int, acked time.Time, d time.Duration) {
	b.mu.Lock()
	b.observed[model] = append(b.observed[model], d)
	b.ackedAt[model] = append(b.ackedAt[model], acked.Sub(b.start))
	b.mu.Unlock()
}

// printTimeline prints, per window of the run (by when the 201 came), the
// slowest sample of each model.
func (b *bench) printTimeline() {
	fmt.Printf("\nslowest sample per %s window (by the time of the 201):\n", b.window)
	fmt.Printf("%8s", "window")
	for _, name := range modelNames {
		fmt.Printf(" %24s", name)
	}
	fmt.Println()
	var slowest [][3]time.Duration
	for m := range modelNames {
		for i, at := range b.ackedAt[m] {
			w := int(at / b.window)
			for len(slowest) <= w {
				slowest = append(slowest, [3]time.Duration{})
			}
			slowest[w][m] = max(slowest[w][m], b.observed[m][i])
		}
	}
	for w, row := range slowest {
		fmt.Printf("%7ds", int((time.Duration(w) * b.window).Seconds()))
		for _, d := range row {
			fmt.Printf(" %24s", d.Round(time.Millisecond))
		}
		fmt.Println()
	}
}

func (b *bench) get(ctx context.Context, path string) (int, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.queryURL+path, nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// searchWatch finds the sampled orders in the search index.
type searchWatch struct {
	b       *bench
	mu      sync.Mutex
	pending map[string]sample // by order id
}

// sample is a timed order: when its command was sent and when the 201 came.
type sample struct{ sent, acked time.Time }

func newSearchWatch(b *bench) *searchWatch {
	return &searchWatch{b: b, pending: map[string]sample{}}
}

func (w *searchWatch) add(id string, sent, acked time.Time) {
	w.mu.Lock()
	w.pending[id] = sample{sent: sent, acked: acked}
	w.mu.Unlock()
}

// run searches every searchEvery until sending is over and no sample is pending.
func (w *searchWatch) run(ctx context.Context, sendingDone <-chan struct{}) {
	ticker := time.NewTicker(searchEvery)
	defer ticker.Stop()
	finished := false
	for {
		select {
		case <-sendingDone:
			finished, sendingDone = true, nil
		case <-ticker.C:
		}
		w.mu.Lock()
		oldest, n := time.Now(), len(w.pending)
		for id, s := range w.pending {
			if time.Since(s.acked) > w.b.timeout {
				delete(w.pending, id)
				w.b.timedOut(2)
				continue
			}
			if s.sent.Before(oldest) {
				oldest = s.sent
			}
		}
		w.mu.Unlock()
		if n == 0 {
			if finished {
				return
			}
			continue
		}
		now := time.Now()
		// Only orders placed since the oldest pending sample was sent (its
		// placed_at is later; the margin covers clock reads on two
		// processes): the samples already found stay out of the answer, so
		// the watcher's query costs Elasticsearch little even when the
		// index lags, instead of fetching ever more documents exactly then.
		for _, id := range w.find(ctx, oldest.Add(-100*time.Millisecond)) {
			w.mu.Lock()
			if s, ok := w.pending[id]; ok {
				delete(w.pending, id)
				w.b.record(2, s.acked, now.Sub(s.acked))
			}
			w.mu.Unlock()
		}
	}
}

// find returns the ids of every sampled order placed since from that the
// search answers, following the pages.
func (w *searchWatch) find(ctx context.Context, from time.Time) []string {
	var ids []string
	cursor := ""
	for page := 0; page < 20; page++ {
		v := url.Values{"q": {w.b.probe}, "from": {from.UTC().Format(time.RFC3339Nano)}, "limit": {"100"}}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		code, body, err := w.b.get(ctx, "/v1/search/orders?"+v.Encode())
		if err != nil || code != http.StatusOK {
			return ids
		}
		var res struct {
			Items []struct {
				OrderID string `json:"order_id"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}
		if json.Unmarshal(body, &res) != nil {
			return ids
		}
		for _, it := range res.Items {
			ids = append(ids, it.OrderID)
		}
		if res.NextCursor == nil || *res.NextCursor == "" {
			return ids
		}
		cursor = *res.NextCursor
	}
	return ids
}
