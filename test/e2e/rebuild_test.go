package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
)

// seedEvents writes n realistic events (accounts with money movements,
// orders placed, paid and shipped) with COPY, in one transaction, and moves
// the relay's checkpoint past them: the live projectors never see them, as
// if the read models had been lost. It returns some seeded stream ids.
func seedEvents(t *testing.T, dbURL string, n int) (accounts, orders []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	if err := eventstore.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	now := time.Now().UTC()
	add := func(st string, id uuid.UUID, version int, typ string, data any) {
		b, _ := json.Marshal(data)
		rows = append(rows, []any{uuid.New(), st, id, int64(version), typ, 1, b, []byte(`{"actor":"seed"}`), now})
	}
	customers := make([]string, 500)
	for i := range customers {
		customers[i] = uuid.NewString()
	}
	for i := 0; len(rows) < n; i++ {
		if i%2 == 0 {
			id := uuid.New()
			accounts = append(accounts, id)
			add("account", id, 1, "AccountOpened", map[string]any{"owner": "seed-" + strconv.Itoa(i), "initial_balance_cents": 1000, "currency": "EUR"})
			for v := 2; v <= 5; v++ {
				if v%2 == 0 {
					add("account", id, v, "FundsDeposited", map[string]any{"amount_cents": 500, "source": "seed"})
				} else {
					add("account", id, v, "FundsWithdrawn", map[string]any{"amount_cents": 300, "reason": "seed"})
				}
			}
			continue
		}
		id := uuid.New()
		orders = append(orders, id)
		add("order", id, 1, "OrderPlaced", map[string]any{"customer_id": customers[i%len(customers)], "currency": "EUR",
			"items": []map[string]any{{"sku": "SEED-1", "name": "Seed lamp", "quantity": 2, "unit_price_cents": 1500}}})
		add("order", id, 2, "OrderPaid", map[string]any{"amount_cents": 3000, "method": "card"})
		add("order", id, 3, "OrderShipped", map[string]any{"carrier": "DHL", "tracking_number": "S" + strconv.Itoa(i)})
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"event_id", "stream_type", "stream_id", "version", "type",
			"schema_version", "data", "metadata", "occurred_at"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO checkpoints (name, transaction_id, position)
			SELECT 'kafka-relay', pg_current_xact_id(), max(position) FROM events`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return accounts, orders
}

// While 200,000 events are rebuilt into the orders projection and commands
// keep arriving, the query API answers every request without a 5xx, and
// after the swap the model equals the reference fold of the store.
func TestRebuildUnderLoad(t *testing.T) {
	const seeded = 200_000
	s := newSystem(t)
	seedAccounts, seedOrders := seedEvents(t, s.dbURL, seeded)
	s.startAll(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Load: commands through the command API, reads through the query API.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var (
		wg        sync.WaitGroup
		reads     atomic.Int64
		serverErr atomic.Int64
		firstErr  atomic.Value
	)
	w := newWorkload(s.command, 30)
	wg.Go(func() {
		if err := w.run(loadCtx, 1_000_000, 2, 7, nil); err != nil && loadCtx.Err() == nil {
			firstErr.CompareAndSwap(nil, err.Error())
		}
	})
	for g := 0; g < 2; g++ {
		wg.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				var path string
				switch i % 3 {
				case 0:
					path = "/v1/orders/" + seedOrders[i%len(seedOrders)].String()
				case 1:
					path = "/v1/accounts/" + seedAccounts[i%len(seedAccounts)].String()
				default:
					path = "/v1/accounts?min_balance_cents=1900&limit=20"
				}
				status, body, err := call(loadCtx, http.MethodGet, s.query+path, nil)
				if loadCtx.Err() != nil {
					return
				}
				reads.Add(1)
				if err != nil || status >= 500 {
					serverErr.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("GET %s: %d %v %v", path, status, err, body))
				}
			}
		})
	}

	admin := "http://" + s.procs["projector-orders-0"].addr
	status, reply, err := call(ctx, http.MethodPost, admin+"/admin/rebuild", nil)
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("POST /admin/rebuild: %d %v %v", status, reply, err)
	}
	var progress map[string]any
	for {
		_, progress, err = call(ctx, http.MethodGet, admin+"/admin/rebuild", nil)
		if err != nil {
			t.Fatal(err)
		}
		if progress["phase"] == "done" || progress["phase"] == "failed" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if progress["phase"] != "done" {
		t.Fatalf("rebuild %v", progress)
	}
	t.Logf("rebuild: %v events at %.0f events/s, %v caught up after the swap", progress["events"], progress["events_per_second"], progress["caught_up_events"])
	time.Sleep(time.Second) // commands keep arriving after the swap too
	stopLoad()
	wg.Wait()
	if n := serverErr.Load(); n > 0 {
		t.Fatalf("%d of %d reads failed with a 5xx during the rebuild; first: %v", n, reads.Load(), firstErr.Load())
	}
	if e := firstErr.Load(); e != nil {
		t.Fatalf("load failed: %v", e)
	}
	t.Logf("%d reads without a 5xx; commands: %s", reads.Load(), w.summary())

	pool, err := pgxpool.New(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ref, err := s.reference(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		diffs := append(compareOrdersView(ctx, pool, ref), compareAccounts(ctx, pool, ref)...)
		if len(diffs) == 0 {
			t.Logf("after the swap the orders projection equals the fold of %d events", ref.events)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rebuild the model differs from the reference (%d differences), e.g. %v", len(diffs), diffs[:min(5, len(diffs))])
		}
		time.Sleep(time.Second)
	}
}
