package ordersmodel_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// history is what a test appended to the real event store.
type history struct {
	streams []uuid.UUID                     // in creation order
	byID    map[uuid.UUID][]events.Envelope // as stored, in version order
	kinds   map[uuid.UUID]events.StreamType
	total   int
}

func (h *history) all() []events.Envelope {
	var out []events.Envelope
	for _, id := range h.streams {
		out = append(out, h.byID[id]...)
	}
	slices.SortFunc(out, func(a, b events.Envelope) int { return int(a.Position - b.Position) })
	return out
}

// appendHistory writes, through eventstore.Store.Append, accounts and
// orders with realistic lives, interleaved across streams; one order is
// stored in the old OrderPlaced v1 shape by raw insert, as an event written
// before schema version 2 would be.
func appendHistory(t testing.TB, pool *pgxpool.Pool, store *eventstore.Store, nAccounts, nOrders, perAccount int) *history {
	t.Helper()
	ctx := context.Background()
	h := &history{byID: map[uuid.UUID][]events.Envelope{}, kinds: map[uuid.UUID]events.StreamType{}}
	add := func(st events.StreamType, id uuid.UUID, p events.Payload) {
		t.Helper()
		stored, err := store.Append(ctx, eventstore.AppendRequest{StreamType: st, StreamID: id,
			ExpectedVersion: int64(len(h.byID[id])), Events: []eventstore.NewEvent{{Data: p, Metadata: events.Metadata{Actor: "test"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(h.byID[id]) == 0 {
			h.streams = append(h.streams, id)
			h.kinds[id] = st
		}
		h.byID[id] = append(h.byID[id], stored...)
		h.total++
	}
	accounts := make([]uuid.UUID, nAccounts)
	orders := make([]uuid.UUID, nOrders)
	for i := range accounts {
		accounts[i] = uuid.Must(uuid.NewV7())
	}
	for i := range orders {
		orders[i] = uuid.Must(uuid.NewV7())
	}
	// The first order is placed in the v1 shape, by raw insert.
	legacy := orders[0]
	v1 := fmt.Sprintf(`{"customer_id":%q,"currency":"SEK","items":[{"sku":"OLD-1","name":"Legacy item","quantity":4,"unit_price_cents":125}]}`, uuid.NewString())
	if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_type, stream_id, version, type, schema_version, data, occurred_at)
		VALUES ($1, 'order', $2, 1, 'OrderPlaced', 1, $3, now())`, uuid.Must(uuid.NewV7()), legacy, v1); err != nil {
		t.Fatal(err)
	}
	stored, err := store.ReadStream(ctx, legacy, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	h.streams = append(h.streams, legacy)
	h.kinds[legacy] = events.StreamOrder
	h.byID[legacy] = stored
	h.total++
	for round := int64(1); round <= int64(perAccount); round++ {
		for i, id := range accounts {
			add(events.StreamAccount, id, accountPayload(i, round, round == int64(perAccount) && i%2 == 0))
		}
		for i, id := range orders {
			if (i == 0 && round == 1) || round > 3 || (round == 3 && i%4 == 3) {
				continue
			}
			add(events.StreamOrder, id, orderPayload(i, round))
		}
	}
	return h
}

// foldReference is what the tables must hold for h, computed with the
// domain aggregates' Fold over what the store returns: the write side's own
// reading of the events.
func foldReference(t testing.TB, h *history) ordersmodel.Rows {
	t.Helper()
	var want ordersmodel.Rows
	for _, id := range h.streams {
		evs := h.byID[id]
		last := evs[len(evs)-1]
		switch h.kinds[id] {
		case events.StreamOrder:
			s := order.Fold(order.State{}, evs)
			want.Orders = append(want.Orders, ordersmodel.OrderRow{OrderID: s.ID, CustomerID: s.CustomerID, Status: string(s.Status),
				Items: s.Items, TaxCents: s.TaxCents, TotalCents: s.TotalCents, Currency: s.Currency, ShippingAddress: s.ShippingAddress,
				Version: s.Version, LastPosition: last.Position, PlacedAt: s.PlacedAt, UpdatedAt: s.UpdatedAt})
		case events.StreamAccount:
			s := account.Fold(account.State{}, evs)
			want.Accounts = append(want.Accounts, ordersmodel.AccountRow{AccountID: s.ID, Owner: s.Owner, BalanceCents: s.BalanceCents,
				Currency: s.Currency, Status: string(s.Status), Version: s.Version, LastPosition: last.Position, UpdatedAt: s.UpdatedAt})
			for k, e := range evs {
				before := account.Fold(account.State{}, evs[:k]).BalanceCents
				after := account.Fold(account.State{}, evs[:k+1]).BalanceCents
				want.Activity = append(want.Activity, ordersmodel.ActivityRow{AccountID: id, Version: e.Version, Position: e.Position,
					Type: e.Type, AmountCents: after - before, BalanceAfterCents: after, Description: description(e.Data), RecordedAt: e.RecordedAt})
			}
		}
	}
	less := func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(want.Orders, func(a, b ordersmodel.OrderRow) int { return less(a.OrderID, b.OrderID) })
	slices.SortFunc(want.Accounts, func(a, b ordersmodel.AccountRow) int { return less(a.AccountID, b.AccountID) })
	slices.SortStableFunc(want.Activity, func(a, b ordersmodel.ActivityRow) int { return less(a.AccountID, b.AccountID) })
	return want
}

// description is the activity description the contract asks for (deposit
// source, withdrawal, reversal or closing reason), stated independently of
// the model's code.
func description(p events.Payload) string {
	switch d := p.(type) {
	case events.AccountOpened:
		return "account opened"
	case events.FundsDeposited:
		return d.Source
	case events.FundsWithdrawn:
		return d.Reason
	case events.DepositReversed:
		return d.Reason
	case events.AccountClosed:
		return d.Reason
	}
	panic(fmt.Sprintf("no description for %T", p))
}

// TestSequencerHealsGapsAndSkipsDuplicates feeds the real Sequencer, over
// the real event store, batches that skip versions (gaps) and repeat others
// (duplicates, also within one batch): the tables must equal the fold of
// the whole store, with every event applied exactly once.
func TestSequencerHealsGapsAndSkipsDuplicates(t *testing.T) {
	ctx := context.Background()
	_, pool := newDB(t)
	store := eventstore.New(pool)
	h := appendHistory(t, pool, store, 6, 8, 7)
	reg := prometheus.NewRegistry()
	seq := consumer.NewSequencer(ordersmodel.New(pool), store, consumer.NewMetrics(reg, "test"))

	pick := func(keep func(i int, e events.Envelope) int) []events.Envelope {
		var out []events.Envelope
		for i, id := range h.streams {
			for _, e := range h.byID[id] {
				for n := keep(i, e); n > 0; n-- {
					out = append(out, e)
				}
			}
		}
		slices.SortStableFunc(out, func(a, b events.Envelope) int { return int(a.Position - b.Position) })
		return out
	}
	batches := [][]events.Envelope{
		// Even streams: version 1 missing, 2 delivered twice, 3 once. Odd streams: version 1.
		pick(func(i int, e events.Envelope) int {
			switch {
			case i%2 == 0 && e.Version == 2:
				return 2
			case i%2 == 0 && e.Version == 3, i%2 == 1 && e.Version == 1:
				return 1
			}
			return 0
		}),
		// Every stream: version 1 again, and its last version only.
		pick(func(i int, e events.Envelope) int {
			if e.Version == 1 || e.Version == int64(len(h.byID[e.StreamID])) {
				return 1
			}
			return 0
		}),
		// A full redelivery: all duplicates.
		h.all(),
	}
	delivered := 0
	for i, b := range batches {
		if err := seq.HandleBatch(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		delivered += len(b)
	}
	applied, healed, skipped := counter(t, reg, "projector_events_applied_total"),
		counter(t, reg, "projector_gap_events_healed_total"), counter(t, reg, "projector_duplicates_skipped_total")
	// Every stored event applied once: delivered ones not skipped, plus the
	// healed ones. Each even stream had at least its version 1 healed.
	if applied != h.total || applied != delivered-skipped+healed || healed < len(h.streams)/2 {
		t.Fatalf("applied %d, healed %d, skipped %d of %d delivered; want %d applied, each even stream healed",
			applied, healed, skipped, delivered, h.total)
	}
	assertRows(t, dump(t, pool), foldReference(t, h))
	head, err := store.HeadPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp := checkpoint(t, pool); cp.Position != head || cp.EventsApplied != int64(h.total) {
		t.Fatalf("checkpoint = %+v, want position %d (the head), events_applied %d", cp, head, h.total)
	}
}

// counter reads a counter the consumer metrics registered on reg.
func counter(t testing.TB, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
