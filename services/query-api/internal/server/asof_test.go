package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

func rfc(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }

// midway is an instant strictly between two recorded events.
func midway(a, b time.Time) time.Time { return a.Add(b.Sub(a) / 2).Truncate(time.Microsecond) }

func TestOrderAsOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := uuid.New()
	evs := e.appendEvents(t, events.StreamOrder, id, events.Metadata{},
		events.OrderPlaced{CustomerID: uuid.New(), Currency: "EUR", TaxCents: 120,
			Items:           []events.LineItem{{SKU: "A", Name: "Lamp", Quantity: 2, UnitPriceCents: 1000}, {SKU: "B", Name: "Bulb", Quantity: 4, UnitPriceCents: 250}},
			ShippingAddress: &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}},
		events.OrderPaid{AmountCents: 3120, Method: "card"},
		events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD1"})
	// The read model says nothing here: as-of answers come from the event store only.
	fold := func(n int, asOf time.Time) model.Order {
		o := model.OrderFromState(order.Fold(order.State{}, evs[:n]))
		o.AsOf = &asOf
		return o
	}
	check := func(t *testing.T) {
		for k := 1; k <= len(evs); k++ {
			at := evs[k-1].RecordedAt.UTC()
			e.get(t, "/v1/orders/"+id.String()+"?at="+rfc(at)).expect(t, http.StatusOK, fold(k, at))
			after := at.Add(10 * time.Second)
			if k < len(evs) {
				after = midway(at, evs[k].RecordedAt)
			}
			r := e.get(t, "/v1/orders/"+id.String()+"?at="+rfc(after))
			r.expect(t, http.StatusOK, fold(k, after))
			if r.header.Get("ETag") != strconv.Quote(strconv.Itoa(k)) {
				t.Fatalf("ETag %q at version %d", r.header.Get("ETag"), k)
			}
			e.get(t, "/v1/orders/"+id.String()+"?version="+strconv.Itoa(k)).expect(t, http.StatusOK, fold(k, at))
		}
		// Version and instant together: the earlier of the two wins.
		e.get(t, "/v1/orders/"+id.String()+"?version=1&at="+rfc(evs[2].RecordedAt)).
			expect(t, http.StatusOK, fold(1, evs[2].RecordedAt.UTC()))
	}
	t.Run("replay", check)
	t.Run("from a snapshot", func(t *testing.T) {
		// A snapshot at version 2 must serve instants after it and be
		// ignored for instants before it.
		repo := aggregate.NewRepository(e.store, aggregate.Orders, 0, nil, nil)
		if err := repo.Save(context.Background(), order.Fold(order.State{}, evs[:2]), evs[1].RecordedAt); err != nil {
			t.Fatal(err)
		}
		check(t)
		// Six reads were at or after version 2: each started from the snapshot.
		if got := metric(t, e.url, `aggregate_snapshot_loads_total{stream_type="order"}`); got != 6 {
			t.Fatalf("snapshot loads %v, want 6", got)
		}
	})
	t.Run("offset instants", func(t *testing.T) {
		at := evs[1].RecordedAt.In(time.FixedZone("", 2*3600))
		e.get(t, "/v1/orders/"+id.String()+"?at="+url.QueryEscape(at.Format(time.RFC3339Nano))).
			expect(t, http.StatusOK, fold(2, at.UTC()))
	})
	t.Run("before creation", func(t *testing.T) {
		before := evs[0].RecordedAt.Add(-time.Microsecond)
		p := e.get(t, "/v1/orders/"+id.String()+"?at="+rfc(before)).problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, "did not exist at "+before.UTC().Format(time.RFC3339Nano)) {
			t.Fatalf("detail %q does not explain", p.Detail)
		}
	})
	t.Run("version beyond the stream", func(t *testing.T) {
		p := e.get(t, "/v1/orders/"+id.String()+"?version=4").problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, "no version 4") || !strings.Contains(p.Detail, "latest version is 3") {
			t.Fatalf("detail %q", p.Detail)
		}
		p = e.get(t, "/v1/orders/"+id.String()+"?version=3&at="+rfc(evs[1].RecordedAt)).problem(t, http.StatusNotFound)
		if !strings.Contains(p.Detail, "was at version 2") {
			t.Fatalf("detail %q", p.Detail)
		}
	})
	t.Run("unknown or other stream type", func(t *testing.T) {
		e.get(t, "/v1/orders/"+uuid.NewString()+"?version=1").problem(t, http.StatusNotFound)
		acc := uuid.New()
		e.appendEvents(t, events.StreamAccount, acc, events.Metadata{}, events.AccountOpened{Owner: "x", Currency: "EUR"})
		e.get(t, "/v1/orders/"+acc.String()+"?version=1").problem(t, http.StatusNotFound)
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/orders/"+id.String()+"?at=2026-13-45").badParams(t, "at")
		e.get(t, "/v1/orders/"+id.String()+"?at=1700000000").badParams(t, "at")
		e.get(t, "/v1/orders/"+id.String()+"?version=0").badParams(t, "version")
		e.get(t, "/v1/orders/"+id.String()+"?at="+rfc(evs[0].RecordedAt)+"&wait=1s").badParams(t, "wait")
	})
}

func TestAccountAsOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := uuid.New()
	evs := e.appendEvents(t, events.StreamAccount, id, events.Metadata{},
		events.AccountOpened{Owner: "ada", InitialBalanceCents: 1000, Currency: "EUR"},
		events.FundsDeposited{AmountCents: 500, Source: "card"},
		events.FundsWithdrawn{AmountCents: 300, Reason: "atm"},
		events.DepositReversed{DepositVersion: 2, AmountCents: 500, Reason: "typo"},
		events.AccountClosed{Reason: "moving"})
	// The current read model is deliberately different: as-of never reads it.
	e.putAccount(t, accountRow{ID: id, Owner: "ada", Balance: 1, Currency: "EUR", Status: "open", Version: 1, UpdatedAt: evs[0].RecordedAt})
	fold := func(n int, asOf time.Time) model.Account {
		a := model.AccountFromState(account.Fold(account.State{}, evs[:n]))
		a.AsOf = &asOf
		return a
	}
	wantBalances := []int64{1000, 1500, 1200, 700, 700}
	for k := 1; k <= len(evs); k++ {
		at := evs[k-1].RecordedAt.UTC()
		want := fold(k, at)
		if want.BalanceCents != wantBalances[k-1] {
			t.Fatalf("fold at %d: balance %d, want %d", k, want.BalanceCents, wantBalances[k-1])
		}
		e.get(t, "/v1/accounts/"+id.String()+"?at="+rfc(at)).expect(t, http.StatusOK, want)
		if k < len(evs) {
			mid := midway(at, evs[k].RecordedAt)
			e.get(t, "/v1/accounts/"+id.String()+"?at="+rfc(mid)).expect(t, http.StatusOK, fold(k, mid))
		}
		e.get(t, "/v1/accounts/"+id.String()+"?version="+strconv.Itoa(k)).expect(t, http.StatusOK, want)
	}
	closed := fold(5, evs[4].RecordedAt.UTC())
	if closed.Status != "closed" {
		t.Fatalf("final status %q", closed.Status)
	}
	p := e.get(t, "/v1/accounts/"+id.String()+"?at="+rfc(evs[0].RecordedAt.Add(-time.Millisecond))).problem(t, http.StatusNotFound)
	if !strings.Contains(p.Detail, "did not exist at") {
		t.Fatalf("detail %q", p.Detail)
	}
	e.get(t, "/v1/accounts/"+id.String()+"?at=not-a-time").badParams(t, "at")
	e.get(t, "/v1/accounts/"+id.String()+"?version=9").problem(t, http.StatusNotFound)
	// The live read model answers without ?at.
	e.get(t, "/v1/accounts/"+id.String()).expect(t, http.StatusOK, accountJSON(accountRow{ID: id, Owner: "ada", Balance: 1,
		Currency: "EUR", Status: "open", Version: 1, UpdatedAt: evs[0].RecordedAt.UTC()}))
}
