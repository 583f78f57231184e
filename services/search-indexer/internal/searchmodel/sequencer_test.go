package searchmodel_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// TestThroughSequencer feeds the model through the consumer runtime's
// Sequencer with a real event store: deliveries with gaps (a message parked
// in the DLQ), redeliveries and account events. The index must equal the
// fold of the store, healing only the missing order events and never
// reading account history.
func TestThroughSequencer(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	if err := eventstore.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	pool := testenv.NewPool(t, dbURL)
	store := eventstore.New(pool)
	ctx := context.Background()

	write := func(typ events.StreamType, id uuid.UUID, expected int64, ps ...events.Payload) []events.Envelope {
		t.Helper()
		req := eventstore.AppendRequest{StreamType: typ, StreamID: id, ExpectedVersion: expected}
		for _, p := range ps {
			req.Events = append(req.Events, eventstore.NewEvent{Data: p})
		}
		evs, err := store.Append(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	cust := uuid.New()
	o1, o2, o3, acct := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	e1 := write(events.StreamOrder, o1, 0, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{lamp, bulb}, Currency: "EUR", TaxCents: 250})
	a1 := write(events.StreamAccount, acct, 0, events.AccountOpened{Owner: "Ada", InitialBalanceCents: 100, Currency: "EUR"},
		events.FundsDeposited{AmountCents: 50, Source: "bank"}, events.FundsDeposited{AmountCents: 70, Source: "bank"})
	e2 := write(events.StreamOrder, o2, 0, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{mug}, Currency: "EUR"})
	e1 = append(e1, write(events.StreamOrder, o1, 1, events.OrderPaid{AmountCents: 3347, Method: "card"},
		events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD1"})...)
	e3 := write(events.StreamOrder, o3, 0, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{desk}, Currency: "EUR"},
		events.OrderPaid{AmountCents: 45000, Method: "card"})
	a1 = append(a1, write(events.StreamAccount, acct, 3, events.FundsWithdrawn{AmountCents: 20, Reason: "coffee"})...)
	e2 = append(e2, write(events.StreamOrder, o2, 1, events.OrderCancelled{Reason: "no"})...)
	e3 = append(e3, write(events.StreamOrder, o3, 2, events.OrderShipped{Carrier: "UPS", TrackingNumber: "1Z"})...)

	client, names, _ := setup(t)
	model := searchmodel.New(client, names.Alias, names.CheckpointIndex,
		searchmodel.WithStreamTypes(searchmodel.NewStoreStreamTypes(pool)), searchmodel.WithClock(func() time.Time { return fixedNow }))
	reg := prometheus.NewRegistry()
	seq := consumer.NewSequencer(model, store, consumer.NewMetrics(reg, "test"))

	deliveries := [][]events.Envelope{
		// o1@2 is missing (parked in the DLQ): o1@3 heals it. The account
		// arrives from its version 3: a gap the indexer must not heal.
		{e1[0], a1[2], e2[0], e1[2], e3[0]},
		// Redelivery of the first batch after a crash before the commit,
		// plus new events.
		{e1[0], a1[2], e2[0], e1[2], e3[0], e3[1], a1[3], e2[1]},
		// A late duplicate of an old event, and the rest.
		{e1[1], e3[2], e2[0]},
	}
	for i, b := range deliveries {
		if err := seq.HandleBatch(ctx, b); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}

	want := map[uuid.UUID]searchdoc.Order{}
	for _, id := range []uuid.UUID{o1, o2, o3} {
		evs, err := store.ReadStream(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = docOf(order.Fold(order.State{}, evs), evs[len(evs)-1].Position)
	}
	checkDocs(t, client, names, want)
	if d := want[o1]; d.Status != "shipped" || d.TotalCents != 2*1250+3*199+250 || d.Version != 3 {
		t.Fatalf("fold of the store is not what the test wrote: %+v", d)
	}

	wantCP := searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: e3[2].Position, EventsApplied: 8, UpdatedAt: fixedNow}
	if got := getCheckpoint(t, client, names); got != wantCP {
		t.Errorf("checkpoint %+v, want %+v", got, wantCP)
	}

	counters := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if ms := mf.GetMetric(); len(ms) == 1 && ms[0].GetCounter() != nil {
			counters[mf.GetName()] = ms[0].GetCounter().GetValue()
		}
	}
	wantCounters := map[string]float64{
		// o1@2 only: no account history was read.
		"projector_gap_events_healed_total": 1,
		// Every order event exactly once.
		"projector_events_applied_total": 8,
		// acct@3; the five redelivered events and acct@4; o1@2 and o2@1.
		"projector_duplicates_skipped_total": 1 + 6 + 2,
	}
	for name, v := range wantCounters {
		if counters[name] != v {
			t.Errorf("%s = %v, want %v", name, counters[name], v)
		}
	}
}

// docOf is the document the contract promises for an order state, written
// out field by field.
func docOf(s order.State, lastPosition int64) searchdoc.Order {
	d := searchdoc.Order{OrderID: s.ID.String(), CustomerID: s.CustomerID.String(), Status: string(s.Status), Items: s.Items,
		TotalCents: s.TotalCents, TaxCents: s.TaxCents, Currency: s.Currency, Version: s.Version, LastPosition: lastPosition,
		PlacedAt: s.PlacedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC()}
	for _, it := range s.Items {
		d.ItemNames = append(d.ItemNames, it.Name)
		d.SKUs = append(d.SKUs, it.SKU)
	}
	return d
}
