//go:build chaos

// This test stops and restarts the shared Kafka broker, so it never runs
// beside other tests: `make test` runs it alone (go test -tags chaos) after
// the rest.
package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/config"
	"github.com/escqrs/platform/services/command-api/internal/server"
)

func stack(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../../../../scripts/stack.sh", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/stack.sh %v: %v", args, err)
	}
}

// With Kafka stopped, appends still return 201; after Kafka starts again,
// every event arrives.
func TestAppendsSurviveKafkaOutage(t *testing.T) {
	testenv.RequireKafka(t)
	dbURL := testenv.NewDatabase(t)
	prefix := "outage-" + uuid.NewString()[:8] + "-"
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.KafkaTopicPrefix, cfg.KafkaPartitions = dbURL, prefix, 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	want := map[string]bool{} // "stream/version"
	record := func(r map[string]any) { want[fmt.Sprintf("%s/%v", r["id"], r["version"])] = true }

	// Before the outage: one order, so the topics exist.
	record(post("/v1/orders", `{"customer_id":"`+uuid.NewString()+`","currency":"EUR","items":[{"sku":"A","name":"A","quantity":1,"unit_price_cents":100}]}`))

	stack(t, "down", "kafka")
	restarted := false
	defer func() {
		if !restarted {
			stack(t, "up", "kafka")
		}
	}()
	for i := 0; i < 20; i++ {
		acct := post("/v1/accounts", `{"owner":"o","initial_balance_cents":100,"currency":"EUR"}`)
		record(acct)
		record(post("/v1/accounts/"+acct["id"].(string)+"/deposits", `{"amount_cents":5}`))
	}
	time.Sleep(2 * time.Second) // the relay fails and backs off meanwhile
	stack(t, "up", "kafka")
	restarted = true

	var (
		mu  sync.Mutex
		got = map[string]bool{}
	)
	rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
	defer rcancel()
	var wg sync.WaitGroup
	for _, st := range []events.StreamType{events.StreamOrder, events.StreamAccount} {
		for p := 0; p < 3; p++ {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers(), Topic: prefix + st.Topic(), Partition: p, MaxWait: 100 * time.Millisecond})
			wg.Go(func() {
				defer r.Close()
				for {
					m, err := r.ReadMessage(rctx)
					if err != nil {
						return
					}
					var e events.Envelope
					if err := json.Unmarshal(m.Value, &e); err != nil {
						t.Errorf("decode: %v", err)
						return
					}
					mu.Lock()
					got[fmt.Sprintf("%s/%d", e.StreamID, e.Version)] = true
					mu.Unlock()
				}
			})
		}
	}
	for {
		mu.Lock()
		missing := 0
		for k := range want {
			if !got[k] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if rctx.Err() != nil {
			t.Fatalf("%d of %d events never arrived after Kafka came back", missing, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	rcancel()
	wg.Wait()
	t.Logf("all %d events appended during the outage arrived after Kafka restarted", len(want))
}
