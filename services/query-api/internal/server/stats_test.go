package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/readmodel/statskeys"
)

func TestCustomerStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	busy, quiet := uuid.New(), uuid.New()
	e.rdb.HSet(ctx, e.keys.CustomerStats(busy.String()), map[string]any{
		"orders_placed": 5, "orders_paid": 3, "orders_cancelled": 1, "total_spent_cents": 45600,
		"last_order_at": "2026-06-01T12:30:45.123456789Z",
	})
	// A customer whose stats hash lacks last_order_at (and some counters).
	e.rdb.HSet(ctx, e.keys.CustomerStats(quiet.String()), map[string]any{"orders_placed": 1})

	t.Run("found", func(t *testing.T) {
		e.get(t, "/v1/customers/"+busy.String()+"/stats").expect(t, http.StatusOK, map[string]any{
			"customer_id": busy, "orders_placed": 5, "orders_paid": 3, "orders_cancelled": 1,
			"total_spent_cents": 45600, "last_order_at": "2026-06-01T12:30:45.123456789Z"})
		e.get(t, "/v1/customers/"+quiet.String()+"/stats").expect(t, http.StatusOK, map[string]any{
			"customer_id": quiet, "orders_placed": 1, "orders_paid": 0, "orders_cancelled": 0,
			"total_spent_cents": 0, "last_order_at": nil})
	})
	t.Run("unknown customer", func(t *testing.T) {
		e.get(t, "/v1/customers/"+uuid.NewString()+"/stats").problem(t, http.StatusNotFound)
	})
	t.Run("bad id", func(t *testing.T) {
		e.get(t, "/v1/customers/zzz/stats").problem(t, http.StatusBadRequest)
	})
	t.Run("follows the active namespace", func(t *testing.T) {
		// Flipping the active-namespace key switches readers to a rebuilt
		// namespace at once.
		rebuilt := statskeys.Keys{NS: e.keys.NS + "-rebuilt"}
		e.rdb.HSet(ctx, rebuilt.CustomerStats(busy.String()), map[string]any{
			"orders_placed": 6, "orders_paid": 4, "orders_cancelled": 1, "total_spent_cents": 50000,
			"last_order_at": "2026-06-02T00:00:00Z"})
		if err := e.rdb.Set(ctx, e.cfg.StatsNamespaceKey, rebuilt.NS, 0).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.rdb.Set(ctx, e.cfg.StatsNamespaceKey, e.keys.NS, 0) })
		e.get(t, "/v1/customers/"+busy.String()+"/stats").expect(t, http.StatusOK, map[string]any{
			"customer_id": busy, "orders_placed": 6, "orders_paid": 4, "orders_cancelled": 1,
			"total_spent_cents": 50000, "last_order_at": "2026-06-02T00:00:00Z"})
		// quiet has no stats in the rebuilt namespace.
		e.get(t, "/v1/customers/"+quiet.String()+"/stats").problem(t, http.StatusNotFound)
	})
}

func TestTopCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c := ids(4)
	e.rdb.ZAdd(ctx, e.keys.TopCustomers(),
		redis.Z{Score: 1000, Member: c[0].String()}, redis.Z{Score: 99999, Member: c[1].String()},
		redis.Z{Score: 5, Member: c[2].String()}, redis.Z{Score: 4242, Member: c[3].String()})

	e.get(t, "/v1/customers/top?limit=3").expect(t, http.StatusOK, map[string]any{"items": []map[string]any{
		{"rank": 1, "customer_id": c[1], "total_spent_cents": 99999},
		{"rank": 2, "customer_id": c[3], "total_spent_cents": 4242},
		{"rank": 3, "customer_id": c[0], "total_spent_cents": 1000},
	}})
	var all struct {
		Items []map[string]any `json:"items"`
	}
	r := e.get(t, "/v1/customers/top")
	r.expect(t, http.StatusOK, nil)
	decode(t, r.body, &all)
	if len(all.Items) != 4 || all.Items[3]["customer_id"] != c[2].String() {
		t.Fatalf("default limit: %v", all.Items)
	}
	e.get(t, "/v1/customers/top?limit=0").badParams(t, "limit")
	e.get(t, "/v1/customers/top?limit=101").badParams(t, "limit")

	// An empty ranking is an empty list, not an error.
	cfg := e.cfg
	cfg.StatsNamespaceKey = e.cfg.StatsNamespaceKey + "-unset"
	e.rdb.Set(ctx, cfg.StatsNamespaceKey, e.keys.NS+"-empty", 0)
	get(t, e.serve(t, cfg)+"/v1/customers/top").expect(t, http.StatusOK, map[string]any{"items": []any{}})
}

// TestCustomerStatsReadYourWrites: ?order_id&min_version waits until the
// stats reflect that version of the order (the order's hash in the stats
// model, which the projector writes in the same script as the customer's
// stats).
func TestCustomerStatsReadYourWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	customer, other := uuid.New(), uuid.New()
	placed, late := uuid.New(), uuid.New()
	write := func(order uuid.UUID, version, ordersPlaced int) {
		t.Helper()
		if _, err := e.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, e.keys.Order(order.String()), map[string]any{"customer_id": customer.String(), "version": version,
				"status": "placed", "total_cents": 100, "paid_cents": 0})
			p.HSet(ctx, e.keys.CustomerStats(customer.String()), map[string]any{"orders_placed": ordersPlaced,
				"orders_paid": 0, "orders_cancelled": 0, "total_spent_cents": 0, "last_order_at": "2026-06-01T12:00:00Z"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stats := func(ordersPlaced int) map[string]any {
		return map[string]any{"customer_id": customer, "orders_placed": ordersPlaced, "orders_paid": 0, "orders_cancelled": 0,
			"total_spent_cents": 0, "last_order_at": "2026-06-01T12:00:00Z"}
	}
	write(placed, 2, 1)
	path := func(c, order uuid.UUID, query string) string {
		return "/v1/customers/" + c.String() + "/stats?order_id=" + order.String() + "&" + query
	}

	t.Run("already reflected", func(t *testing.T) {
		e.get(t, path(customer, placed, "min_version=2")).expect(t, http.StatusOK, stats(1))
	})
	t.Run("reflected by a concurrent write", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- e.get(t, path(customer, late, "min_version=1&wait=8s")) }()
		time.Sleep(200 * time.Millisecond)
		write(late, 1, 2)
		(<-done).expect(t, http.StatusOK, stats(2))
	})
	t.Run("not reflected in time", func(t *testing.T) {
		r := e.get(t, path(customer, placed, "min_version=3&wait=100ms"))
		r.expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 2, "min_version": 3})
		e.get(t, path(customer, uuid.New(), "min_version=1&wait=50ms")).
			expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 0, "min_version": 1})
	})
	t.Run("another customer's order", func(t *testing.T) {
		e.get(t, path(other, placed, "min_version=1")).problem(t, http.StatusBadRequest)
	})
	t.Run("bad parameters", func(t *testing.T) {
		base := "/v1/customers/" + customer.String() + "/stats"
		e.get(t, base+"?order_id="+placed.String()).badParams(t, "order_id")
		e.get(t, base+"?min_version=1").badParams(t, "order_id")
		e.get(t, base+"?order_id=zzz&min_version=0").badParams(t, "min_version", "order_id")
	})
}
