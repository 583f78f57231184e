package searchmodel_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// history is three orders' events in store order, with the documents they fold to.
type history struct {
	evs  []events.Envelope
	want map[uuid.UUID]searchdoc.Order
}

func newHistory() history {
	cust := uuid.New()
	x, y, z := newStream(events.StreamOrder), newStream(events.StreamOrder), newStream(events.StreamOrder)
	evs := []events.Envelope{
		x.next(1, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{lamp}, Currency: "EUR", TaxCents: 100}),
		y.next(2, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{mug, bulb}, Currency: "EUR"}),
		x.next(3, events.OrderPaid{AmountCents: 2600, Method: "card"}),
		z.next(4, events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{kettle}, Currency: "EUR", TaxCents: 1}),
		y.next(5, events.OrderCancelled{Reason: "duplicate"}),
		x.next(6, events.OrderShipped{Carrier: "UPS", TrackingNumber: "1Z"}),
		z.next(7, events.OrderPaid{AmountCents: 4000, Method: "card"}),
		z.next(8, events.OrderCancelled{Reason: "late"}),
	}
	doc := func(id uuid.UUID, status string, items []events.LineItem, tax, version, placed, last int64) searchdoc.Order {
		d := searchdoc.Order{OrderID: id.String(), CustomerID: cust.String(), Status: status, Items: items,
			TaxCents: tax, TotalCents: tax, Currency: "EUR", Version: version, LastPosition: last,
			PlacedAt: recordedAt(placed), UpdatedAt: recordedAt(last)}
		for _, it := range items {
			d.ItemNames, d.SKUs = append(d.ItemNames, it.Name), append(d.SKUs, it.SKU)
			d.TotalCents += it.Quantity * it.UnitPriceCents
		}
		return d
	}
	return history{evs: evs, want: map[uuid.UUID]searchdoc.Order{
		x.id: doc(x.id, "shipped", []events.LineItem{lamp}, 100, 3, 1, 6),
		y.id: doc(y.id, "cancelled", []events.LineItem{mug, bulb}, 0, 2, 2, 5),
		z.id: doc(z.id, "cancelled", []events.LineItem{kettle}, 1, 3, 4, 8),
	}}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		batches func(evs []events.Envelope) [][]events.Envelope
		applied int64 // events_applied: each event is folded once however often it is delivered
	}{
		{"once", func(evs []events.Envelope) [][]events.Envelope { return [][]events.Envelope{evs} }, 8},
		{"same batch twice", func(evs []events.Envelope) [][]events.Envelope { return [][]events.Envelope{evs, evs} }, 8},
		{"overlapping batches", func(evs []events.Envelope) [][]events.Envelope {
			return [][]events.Envelope{evs[:3], evs[1:6], evs[0:4], evs[4:], evs[2:]}
		}, 8},
		{"one event at a time, then all again", func(evs []events.Envelope) [][]events.Envelope {
			var out [][]events.Envelope
			for i := range evs {
				out = append(out, evs[i:i+1])
			}
			return append(out, evs)
		}, 8},
		{"replay after the end", func(evs []events.Envelope) [][]events.Envelope {
			return [][]events.Envelope{evs, evs[:2], evs[5:6]}
		}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, names, model := setup(t)
			h := newHistory()
			for _, b := range tt.batches(h.evs) {
				mustApply(t, model, b...)
			}
			checkDocs(t, client, names, h.want)
			want := searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: 8, EventsApplied: tt.applied, UpdatedAt: fixedNow}
			if got := getCheckpoint(t, client, names); !reflect.DeepEqual(got, want) {
				t.Errorf("checkpoint %+v, want %+v", got, want)
			}
		})
	}
}

// TestConcurrentReplicas: replicas holding the same partitions during a
// rebalance apply the same events at the same time, in different batch
// sizes; the index ends exactly at the fold, and every write that lost a
// race is a success, not an error.
func TestConcurrentReplicas(t *testing.T) {
	t.Parallel()
	client, names, model := setup(t)
	// A second model (another replica's process) over the same index.
	other := searchmodel.New(client, names.Alias, names.CheckpointIndex)
	h := newHistory()
	const replicas = 6
	var wg sync.WaitGroup
	errs := make(chan error, replicas*len(h.evs))
	for r := range replicas {
		m := model
		if r%2 == 1 {
			m = other
		}
		size := r%3 + 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(h.evs); i += size {
				if err := m.Apply(context.Background(), h.evs[i:min(i+size, len(h.evs))]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("apply: %v", err)
	}
	checkDocs(t, client, names, h.want)
	cp := getCheckpoint(t, client, names)
	if cp.Position != 8 {
		t.Errorf("checkpoint position %d, want 8", cp.Position)
	}
	// Replicas that read the same old document both count its events; the
	// count is a rate, not an exact tally, under overlap.
	if cp.EventsApplied < 8 || cp.EventsApplied > replicas*8 {
		t.Errorf("checkpoint events_applied %d, want 8..%d", cp.EventsApplied, replicas*8)
	}
}

// TestStaleDocument: events that do not follow the stored version are
// refused, not folded onto the wrong state.
func TestStaleDocument(t *testing.T) {
	t.Parallel()
	client, names, model := setup(t)
	h := newHistory()
	mustApply(t, model, h.evs[0]) // x at version 1
	err := model.Apply(context.Background(), []events.Envelope{h.evs[5]})
	if !errors.Is(err, searchmodel.ErrStale) {
		t.Fatalf("apply x@3 onto x@1: err = %v, want ErrStale", err)
	}
	if model.Transient(err) {
		t.Error("a stale document is reported as an outage")
	}
	d, v, _ := getDoc(t, client, names, h.evs[0].StreamID)
	if v != 1 || d.Status != "placed" {
		t.Errorf("after the refused batch: status %s version %d, want placed 1", d.Status, v)
	}
}

// TestCheckpointEvery: with a checkpoint interval, a batch inside the
// interval leaves its position and count pending; they reach the checkpoint
// document with the next write, from FlushCheckpoint or from the timer.
func TestCheckpointEvery(t *testing.T) {
	t.Parallel()
	h := newHistory()
	t.Run("flush", func(t *testing.T) {
		t.Parallel()
		client, names, model := setup(t, searchmodel.WithCheckpointEvery(time.Hour))
		mustApply(t, model, h.evs[:3]...)
		mustApply(t, model, h.evs[3:]...)
		want := searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: 3, EventsApplied: 3, UpdatedAt: fixedNow}
		if got := getCheckpoint(t, client, names); !reflect.DeepEqual(got, want) {
			t.Fatalf("checkpoint inside the interval %+v, want %+v (the first batch only)", got, want)
		}
		if err := model.FlushCheckpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		want = searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: 8, EventsApplied: 8, UpdatedAt: fixedNow}
		if got := getCheckpoint(t, client, names); !reflect.DeepEqual(got, want) {
			t.Fatalf("checkpoint after the flush %+v, want %+v", got, want)
		}
		checkDocs(t, client, names, h.want)
	})
	t.Run("timer", func(t *testing.T) {
		t.Parallel()
		client, names, model := setup(t, searchmodel.WithCheckpointEvery(200*time.Millisecond), searchmodel.WithClock(time.Now))
		mustApply(t, model, h.evs[:3]...)
		mustApply(t, model, h.evs[3:]...)
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := getCheckpoint(t, client, names)
			if got.Position == 8 && got.EventsApplied == 8 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint %+v: the timer never wrote the pending batch", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
