package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

func TestProjections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.appendEvents(t, events.StreamAccount, uuid.New(), events.Metadata{},
		events.AccountOpened{Owner: "a", InitialBalanceCents: 1, Currency: "EUR"}, events.FundsDeposited{AmountCents: 1},
		events.FundsDeposited{AmountCents: 2})
	e.appendEvents(t, events.StreamOrder, uuid.New(), events.Metadata{},
		events.OrderPlaced{CustomerID: uuid.New(), Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "A", Quantity: 1, UnitPriceCents: 1}}},
		events.OrderPaid{AmountCents: 1, Method: "card"}, events.OrderCancelled{})
	head, err := e.store.HeadPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head < 6 {
		t.Fatalf("head %d after six appends", head)
	}

	t.Run("nothing applied yet", func(t *testing.T) {
		status := func(name string, lag int64) map[string]any {
			return map[string]any{"name": name, "position": 0, "lag_events": lag, "events_applied": 0, "updated_at": nil}
		}
		// The search index consumes orders only: the three account events are not its lag.
		e.get(t, "/v1/projections").expect(t, http.StatusOK, map[string]any{
			"projections": []any{status("orders", 6), status("stats", 6), status("search", 3)}, "head_position": head})
	})

	ordersAt, statsAt, searchAt := ts("2026-08-01T10:00:00.5Z"), ts("2026-08-01T10:00:01Z"), ts("2026-08-01T10:00:02.25Z")
	if _, err := e.pool.Exec(ctx, `INSERT INTO projection_checkpoints (projection, position, events_applied, updated_at)
		VALUES ('orders', $1, 40, $2)`, head-3, ordersAt); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.HSet(ctx, e.keys.Checkpoint(), "position", head-1, "events_applied", 41,
		"updated_at", statsAt.Format(time.RFC3339)).Err(); err != nil {
		t.Fatal(err)
	}
	// The search checkpoint is ahead of the head read: lag is clamped at zero.
	if _, err := e.es.CreateIndex(e.cfg.SearchCheckpointIndex).BodyString(searchdoc.CheckpointMapping).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.es.Index().Index(e.cfg.SearchCheckpointIndex).Id(searchdoc.Projection).
		BodyJson(searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: head + 4, EventsApplied: 42, UpdatedAt: searchAt}).
		Refresh("true").Do(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("positions and lags", func(t *testing.T) {
		e.get(t, "/v1/projections").expect(t, http.StatusOK, map[string]any{
			"projections": []any{
				map[string]any{"name": "orders", "position": head - 3, "lag_events": 3, "events_applied": 40, "updated_at": ordersAt},
				map[string]any{"name": "stats", "position": head - 1, "lag_events": 1, "events_applied": 41, "updated_at": statsAt},
				map[string]any{"name": "search", "position": head + 4, "lag_events": 0, "events_applied": 42, "updated_at": searchAt},
			},
			"head_position": head})
	})
	t.Run("lag gauge", func(t *testing.T) {
		for name, want := range map[string]float64{"orders": 3, "stats": 1, "search": 0} {
			if got := metric(t, e.url, `projection_lag_events{projection="`+name+`"}`); got != want {
				t.Errorf("projection_lag_events{projection=%q} = %v, want %v", name, got, want)
			}
		}
	})
}

// TestDegraded runs the query API against a database without read models,
// a Redis and an Elasticsearch that are not there: what can be answered is,
// the rest is 503 with Retry-After, and readiness says which engine is down.
func TestDegraded(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	if err := eventstore.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	e := &env{pool: testenv.NewPool(t, dbURL)}
	e.store = eventstore.New(e.pool)
	orderID := uuid.New()
	e.appendEvents(t, events.StreamOrder, orderID, events.Metadata{},
		events.OrderPlaced{CustomerID: uuid.New(), Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "A", Quantity: 1, UnitPriceCents: 1}}})
	head, err := e.store.HeadPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	url := e.serve(t, configFor(dbURL, "redis://127.0.0.1:1/0", "http://127.0.0.1:1"))

	t.Run("projections", func(t *testing.T) {
		var body struct {
			Projections []map[string]any `json:"projections"`
			Head        int64            `json:"head_position"`
		}
		r := get(t, url+"/v1/projections")
		r.expect(t, http.StatusOK, nil)
		decode(t, r.body, &body)
		if body.Head != head || len(body.Projections) != 3 {
			t.Fatalf("report %s", r.body)
		}
		for i, name := range []string{"orders", "stats", "search"} {
			p := body.Projections[i]
			if p["name"] != name || p["error"] == nil || p["error"] == "" || p["lag_events"] != nil || p["position"] != nil {
				t.Fatalf("projection %d: %v, want %s with an error and no numbers", i, p, name)
			}
		}
		for _, name := range []string{"orders", "stats", "search"} {
			if got := metric(t, url, `projection_lag_events{projection="`+name+`"}`); got != -1 {
				t.Errorf("projection_lag_events{projection=%q} = %v, want no series", name, got)
			}
		}
	})
	t.Run("readyz", func(t *testing.T) {
		var body map[string]string
		r := get(t, url+"/readyz")
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("readyz %d %s", r.status, r.body)
		}
		decode(t, r.body, &body)
		if body["postgres"] != "ok" || body["redis"] == "ok" || body["elasticsearch"] == "ok" || len(body) != 3 {
			t.Fatalf("readyz %v", body)
		}
		get(t, url+"/healthz").expect(t, http.StatusOK, map[string]any{"status": "ok"})
	})
	t.Run("unavailable models answer 503", func(t *testing.T) {
		for _, path := range []string{
			"/v1/orders/" + orderID.String(),
			"/v1/customers/" + uuid.NewString() + "/orders",
			"/v1/accounts?min_balance_cents=0",
			"/v1/customers/" + uuid.NewString() + "/stats",
			"/v1/customers/top",
			"/v1/search/orders?q=lamp",
		} {
			r := get(t, url+path)
			p := r.problem(t, http.StatusServiceUnavailable)
			if r.header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "unavailable") {
				t.Fatalf("%s: Retry-After %q, detail %q", path, r.header.Get("Retry-After"), p.Detail)
			}
		}
	})
	t.Run("the event store still answers", func(t *testing.T) {
		r := get(t, url+"/v1/orders/"+orderID.String()+"?version=1")
		r.expect(t, http.StatusOK, nil)
		get(t, url+"/v1/orders/"+orderID.String()+"/history").expect(t, http.StatusOK, nil)
	})
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("unknown route", func(t *testing.T) {
		e.get(t, "/v1/nothing").problem(t, http.StatusNotFound)
		e.get(t, "/v1/orders/"+uuid.NewString()+"/unknown").problem(t, http.StatusNotFound)
	})
	t.Run("writes are not allowed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/orders/"+uuid.NewString(), strings.NewReader("{}"))
		r := do(t, req)
		r.problem(t, http.StatusMethodNotAllowed)
		if r.header.Get("Allow") != "GET" {
			t.Fatalf("Allow %q", r.header.Get("Allow"))
		}
	})
	t.Run("health", func(t *testing.T) {
		e.get(t, "/healthz").expect(t, http.StatusOK, map[string]any{"status": "ok"})
		e.get(t, "/readyz").expect(t, http.StatusOK, map[string]any{"postgres": "ok", "redis": "ok", "elasticsearch": "ok"})
	})
	t.Run("request metrics by route pattern", func(t *testing.T) {
		e.get(t, "/v1/orders/"+uuid.NewString()).problem(t, http.StatusNotFound)
		series := `http_request_duration_seconds_count{code="404",method="GET",route="/v1/orders/{id}"}`
		if got := metric(t, e.url, series); got != 1 {
			t.Fatalf("%s = %v, want 1", series, got)
		}
	})
}
