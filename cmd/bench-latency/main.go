// Command bench-latency measures eventual consistency as a client sees it:
// it sends a steady rate of POST /v1/orders to a running system (make run)
// and, for a sample of them, times from the 201 until the new order is
// visible through the query API in each read model:
//
//   - orders_view (PostgreSQL): GET /v1/orders/{id} answers 200
//   - stats (Redis):            GET /v1/customers/{customer}/stats answers 200
//   - search (Elasticsearch):   GET /v1/search/orders?customer_id=... finds it
//
// Every order has a customer of its own, so visibility is unambiguous.
//
// Usage: go run ./cmd/bench-latency [-rate 500] [-duration 60s] [-sample 0.1]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
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
	sample := flag.Float64("sample", 0.01, "fraction of commands whose visibility is timed (polling all would load the system it measures)")
	timeout := flag.Duration("timeout", 10*time.Second, "give up on a sample after this long")
	flag.Parse()
	if err := run(*command, *query, *rate, *duration, *sample, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-latency:", err)
		os.Exit(1)
	}
}

type model struct {
	name string
	// poll is the time between two checks of one sample: the resolution
	// of its figures. Each check is a real query, so the polling is
	// sized to the model's latency: a search every 5 ms for a second
	// would load Elasticsearch more than the indexing it measures.
	poll    time.Duration
	visible func(ctx context.Context, orderID, customerID string) (bool, error)
}

func run(commandURL, queryURL string, rate int, duration time.Duration, sample float64, timeout time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	get := func(ctx context.Context, url string) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	models := []model{
		{"orders_view (postgres)", 5 * time.Millisecond, func(ctx context.Context, id, _ string) (bool, error) {
			code, _, err := get(ctx, queryURL+"/v1/orders/"+id)
			return code == http.StatusOK, err
		}},
		{"customer stats (redis)", 5 * time.Millisecond, func(ctx context.Context, _, customer string) (bool, error) {
			code, _, err := get(ctx, queryURL+"/v1/customers/"+customer+"/stats")
			return code == http.StatusOK, err
		}},
		{"search (elasticsearch)", 100 * time.Millisecond, func(ctx context.Context, _, customer string) (bool, error) {
			code, body, err := get(ctx, queryURL+"/v1/search/orders?customer_id="+customer)
			if err != nil || code != http.StatusOK {
				return false, err
			}
			var r struct {
				Total int `json:"total"`
			}
			return json.Unmarshal(body, &r) == nil && r.Total > 0, nil
		}},
	}
	var (
		mu        sync.Mutex
		latencies = make([][]time.Duration, len(models))
		timeouts  = make([]int, len(models))
		sent      atomic.Int64
		failed    atomic.Int64
		wg        sync.WaitGroup
	)
	ctx := context.Background()
	interval := time.Second / time.Duration(rate)
	every := int64(1 / sample)
	// Command n goes out at start + n*interval: a sender that fell behind
	// catches up instead of silently lowering the rate (as a Ticker,
	// which drops ticks, would).
	start := time.Now()
	deadline := start.Add(duration)
	fmt.Printf("sending %d POST /v1/orders per second for %s, timing 1 in %d...\n", rate, duration, every)
	for time.Now().Before(deadline) {
		n := sent.Add(1)
		time.Sleep(time.Until(start.Add(time.Duration(n-1) * interval)))
		wg.Go(func() {
			customer := uuid.NewString()
			body := []byte(`{"customer_id":"` + customer + `","currency":"EUR","items":[{"sku":"LAT-1","name":"Latency probe","quantity":1,"unit_price_cents":100}]}`)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, commandURL+"/v1/orders", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			var created struct {
				ID string `json:"id"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&created)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				failed.Add(1)
				return
			}
			if n%every != 0 {
				return
			}
			acked := time.Now()
			var inner sync.WaitGroup
			for i, m := range models {
				inner.Go(func() {
					pollCtx, cancel := context.WithTimeout(ctx, timeout)
					defer cancel()
					for {
						ok, _ := m.visible(pollCtx, created.ID, customer)
						if ok {
							mu.Lock()
							latencies[i] = append(latencies[i], time.Since(acked))
							mu.Unlock()
							return
						}
						select {
						case <-pollCtx.Done():
							mu.Lock()
							timeouts[i]++
							mu.Unlock()
							return
						case <-time.After(m.poll):
						}
					}
				})
			}
			inner.Wait()
		})
	}
	sending := time.Since(start)
	wg.Wait()
	fmt.Printf("sent %d commands in %s (%d failed), timed %d\n\n", sent.Load(), sending.Round(time.Millisecond), failed.Load(), sent.Load()/every)
	fmt.Printf("%-26s %8s %8s %8s %8s %8s\n", "201 -> visible in", "p50", "p95", "p99", "max", "timeouts")
	for i, m := range models {
		l := latencies[i]
		slices.Sort(l)
		q := func(p float64) string {
			if len(l) == 0 {
				return "-"
			}
			return l[min(len(l)-1, int(p*float64(len(l))))].Round(100 * time.Microsecond).String()
		}
		fmt.Printf("%-26s %8s %8s %8s %8s %8d\n", m.name, q(0.50), q(0.95), q(0.99), q(1), timeouts[i])
	}
	fmt.Println("\nEach sample is polled every 5 ms (Postgres, Redis) or 100 ms (search): figures are upper bounds within that resolution.")
	return nil
}
