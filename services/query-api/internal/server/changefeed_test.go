package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/config"
)

// TestMinVersionWakesOnChangeNotification: with the change feed up, a
// ?min_version read answers as soon as projector-orders announces a change
// of its row, and otherwise re-reads only at the recheck interval, set here
// longer than every wait: a read that is not woken sees the change only at
// its deadline, when it reads a last time before giving up.
func TestMinVersionWakesOnChangeNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.cfg
	cfg.RecheckInterval = config.MaxReadWait
	url := e.serve(t, cfg)
	waitForFeed(t, url)

	placed := ts("2026-05-02T08:00:00Z")
	order := orderRow{ID: uuid.New(), CustomerID: uuid.New(), Status: "placed", Currency: "EUR", Version: 1,
		Items: []events.LineItem{{SKU: "SKU-1", Name: "Lamp", Quantity: 1, UnitPriceCents: 2500}}, Total: 2500,
		PlacedAt: placed, UpdatedAt: placed}
	acc := accountRow{ID: uuid.New(), Owner: "grace", Balance: 500, Currency: "EUR", Status: "open", Version: 1, UpdatedAt: placed}
	e.putAccount(t, acc)
	deposited := acc
	deposited.Balance, deposited.Version, deposited.UpdatedAt = 900, 2, ts("2026-05-02T08:00:01Z")
	unannounced := order
	unannounced.ID = uuid.New()

	const wait = 4 * time.Second
	tests := []struct {
		name     string
		path     string
		write    func(t *testing.T)
		announce []uuid.UUID
		want     any
		woken    bool // answered before the deadline
	}{
		{"a new order", "/v1/orders/" + order.ID.String(),
			func(t *testing.T) { e.putOrder(t, order) }, []uuid.UUID{order.ID}, orderJSON(order), true},
		{"an account's next version", "/v1/accounts/" + acc.ID.String(),
			func(t *testing.T) { e.putAccountVersion(t, deposited) }, []uuid.UUID{acc.ID}, accountJSON(deposited), true},
		{"a change announced for another row only", "/v1/orders/" + unannounced.ID.String(),
			func(t *testing.T) { e.putOrder(t, unannounced) }, []uuid.UUID{order.ID}, orderJSON(unannounced), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minVersion := "1"
			if strings.HasPrefix(tt.path, "/v1/accounts/") {
				minVersion = "2"
			}
			done := make(chan response, 1)
			start := time.Now()
			go func() { done <- get(t, url+tt.path+"?min_version="+minVersion+"&wait="+wait.String()) }()
			time.Sleep(200 * time.Millisecond) // the read has looked once and waits
			tt.write(t)
			if _, err := e.pool.Exec(context.Background(), ordersdb.NotifyChangesSQL, ordersdb.ChangesChannel,
				ordersdb.ChangePayloads(tt.announce)); err != nil {
				t.Fatal(err)
			}
			(<-done).expect(t, http.StatusOK, tt.want)
			if took := time.Since(start); (took < wait-100*time.Millisecond) != tt.woken {
				t.Fatalf("answered after %s of a %s wait; woken by the notification: %v, want %v",
					took.Round(time.Millisecond), wait, !tt.woken, tt.woken)
			}
		})
	}
}

// waitForFeed waits until the query API at url listens for changes.
func waitForFeed(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(string(get(t, url+"/metrics").body), "\nquery_changefeed_up 1\n") {
			return
		}
	}
	t.Fatal("the change feed did not come up within 10s")
}
