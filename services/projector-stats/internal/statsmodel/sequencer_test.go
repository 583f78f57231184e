package statsmodel_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

// storeEmitter appends every decided event to the real event store.
func storeEmitter(t testing.TB, store *eventstore.Store) emitFunc {
	return func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope {
		t.Helper()
		got, err := store.Append(context.Background(), eventstore.AppendRequest{
			StreamType: st, StreamID: id, ExpectedVersion: expected, Events: []eventstore.NewEvent{{Data: p}},
		})
		if err != nil {
			t.Fatalf("append %s to %s: %v", p.EventType(), id, err)
		}
		return got[0]
	}
}

// TestThroughSequencer delivers a history with lost and redelivered events,
// out of order, through consumer.Sequencer backed by the real event store:
// the Sequencer skips the duplicates and heals the gaps from the store, and
// the model ends up equal to the reference folded from the store's streams.
func TestThroughSequencer(t *testing.T) {
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store := eventstore.New(testenv.NewPool(t, url))
	m, rdb, ns := newModel(t)
	ctx := context.Background()

	var appended []events.Envelope
	emit := storeEmitter(t, store)
	newSimulation(11, 15, func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope {
		e := emit(st, id, expected, p)
		appended = append(appended, e)
		return e
	}).run(600)

	// What the relay would publish, and the reference: the store's content,
	// read back stream by stream.
	var stored []events.Envelope
	seen := map[uuid.UUID]bool{}
	for _, e := range appended {
		if seen[e.StreamID] {
			continue
		}
		seen[e.StreamID] = true
		evs, err := store.ReadStream(ctx, e.StreamID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, evs...)
	}
	if len(stored) != 600 {
		t.Fatalf("store holds %d events, want 600", len(stored))
	}
	requireVariety(t, stored)

	// Lose about a third of the events (never a stream's last one: nothing
	// after it would reveal the gap), redeliver another third, and shuffle.
	rng := rand.New(rand.NewPCG(5, 6))
	last := map[uuid.UUID]int64{}
	for _, e := range stored {
		last[e.StreamID] = max(last[e.StreamID], e.Version)
	}
	var delivery []events.Envelope
	lost := 0
	for _, e := range stored {
		if e.Version != last[e.StreamID] && rng.IntN(3) == 0 {
			lost++
			continue
		}
		delivery = append(delivery, e)
		if rng.IntN(3) == 0 {
			delivery = append(delivery, e)
		}
	}
	rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })

	reg := prometheus.NewRegistry()
	seq := consumer.NewSequencer(m, store, consumer.NewMetrics(reg, "test-stats"))
	for i := 0; i < len(delivery); {
		n := 1 + rng.IntN(120)
		if err := seq.HandleBatch(ctx, delivery[i:min(i+n, len(delivery))]); err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		i += n
	}
	assertModel(t, rdb, ns, reference(ns, stored, fixedNow))

	// Every event was applied exactly once; the test did exercise both paths.
	counters := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			if c := mt.GetCounter(); c != nil {
				counters[f.GetName()] += c.GetValue()
			}
		}
	}
	if got := counters["projector_events_applied_total"]; got != float64(len(stored)) {
		t.Fatalf("applied %v events, want %d", got, len(stored))
	}
	if counters["projector_gap_events_healed_total"] < float64(lost) || counters["projector_duplicates_skipped_total"] == 0 {
		t.Fatalf("healed %v (lost %d), skipped %v: the delivery did not exercise gaps and duplicates",
			counters["projector_gap_events_healed_total"], lost, counters["projector_duplicates_skipped_total"])
	}
}
