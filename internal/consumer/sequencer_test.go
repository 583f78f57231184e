package consumer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/pkg/events"
)

// memModel is an in-memory consumer.Model: per stream, the versions applied
// in order, with the check-and-set every model must do. With optimist set it
// also implements consumer.Optimist, applying per event (as the Redis model
// does) or, with allOrNothing, the whole batch or none of it (as the
// Postgres model does).
type memModel struct {
	applied      map[uuid.UUID][]int64
	allOrNothing bool
	calls        map[string]int // round trips, by method
}

func newMemModel(allOrNothing bool) *memModel {
	return &memModel{applied: map[uuid.UUID][]int64{}, allOrNothing: allOrNothing, calls: map[string]int{}}
}

func (m *memModel) version(id uuid.UUID) int64 { return int64(len(m.applied[id])) }

func (m *memModel) Versions(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	m.calls["Versions"]++
	out := map[uuid.UUID]int64{}
	for _, id := range ids {
		if v := m.version(id); v > 0 {
			out[id] = v
		}
	}
	return out, nil
}

func (m *memModel) Apply(_ context.Context, evs []events.Envelope) error {
	m.calls["Apply"]++
	for _, e := range evs {
		if e.Version != m.version(e.StreamID)+1 {
			return fmt.Errorf("apply %s v%d on v%d: the Sequencer broke its promise", e.StreamID, e.Version, m.version(e.StreamID))
		}
		m.applied[e.StreamID] = append(m.applied[e.StreamID], e.Version)
	}
	return nil
}

// optimistModel adds TryApply to memModel.
type optimistModel struct{ *memModel }

func (m optimistModel) TryApply(_ context.Context, evs []events.Envelope) ([]bool, error) {
	m.calls["TryApply"]++
	done := make([]bool, len(evs))
	if m.allOrNothing {
		next := map[uuid.UUID]int64{}
		for _, e := range evs {
			if _, ok := next[e.StreamID]; !ok {
				next[e.StreamID] = m.version(e.StreamID) + 1
			}
			if e.Version != next[e.StreamID] {
				return done, nil
			}
			next[e.StreamID]++
		}
	}
	for i, e := range evs {
		if e.Version == m.version(e.StreamID)+1 {
			m.applied[e.StreamID] = append(m.applied[e.StreamID], e.Version)
			done[i] = true
		}
	}
	return done, nil
}

// memStore is the event store the Sequencer heals gaps from: every stream
// has versions 1..its length.
type memStore map[uuid.UUID]int64

func (s memStore) ReadStream(_ context.Context, id uuid.UUID, after int64, limit int) ([]events.Envelope, error) {
	var out []events.Envelope
	for v := after + 1; v <= s[id] && len(out) < limit; v++ {
		out = append(out, events.Envelope{StreamID: id, Version: v})
	}
	return out, nil
}

// TestSequencer delivers batches with duplicates, gaps and reordering to
// the Sequencer over each kind of model. Every stream must end with each
// of its versions applied exactly once, in order, and the counters must
// say what happened; the round trips show which path each batch took.
func TestSequencer(t *testing.T) {
	a, b := uuid.MustParse("00000000-0000-0000-0000-00000000000a"), uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	ev := func(id uuid.UUID, v int64) events.Envelope { return events.Envelope{StreamID: id, Version: v} }
	store := memStore{a: 4, b: 2}
	// outcome is what one model kind must see: the counters and the
	// round trips by method.
	type outcome struct {
		skipped, healed float64
		calls           map[string]int
	}
	tests := []struct {
		name    string
		batches [][]events.Envelope
		want    [3]outcome // plain model, per-event optimist, all-or-nothing optimist
	}{
		{
			name:    "in order",
			batches: [][]events.Envelope{{ev(a, 1), ev(b, 1), ev(a, 2)}, {ev(a, 3), ev(b, 2), ev(a, 4)}},
			want: [3]outcome{
				{calls: map[string]int{"Versions": 2, "Apply": 2}},
				{calls: map[string]int{"TryApply": 2}},
				{calls: map[string]int{"TryApply": 2}},
			},
		},
		{
			name:    "redelivered",
			batches: [][]events.Envelope{{ev(a, 1), ev(a, 2)}, {ev(a, 1), ev(a, 2), ev(a, 3), ev(b, 1)}, {ev(a, 3), ev(a, 4), ev(b, 2)}},
			want: [3]outcome{
				{skipped: 3, calls: map[string]int{"Versions": 3, "Apply": 3}},
				{skipped: 3, calls: map[string]int{"TryApply": 3, "Versions": 2}},
				{skipped: 3, calls: map[string]int{"TryApply": 3, "Versions": 2, "Apply": 2}},
			},
		},
		{
			name:    "gap healed from the store",
			batches: [][]events.Envelope{{ev(a, 1), ev(b, 2)}, {ev(a, 4)}},
			want: [3]outcome{
				{healed: 3, calls: map[string]int{"Versions": 2, "Apply": 2}},
				{healed: 3, calls: map[string]int{"TryApply": 2, "Versions": 2, "Apply": 2}},
				{healed: 3, calls: map[string]int{"TryApply": 2, "Versions": 2, "Apply": 2}},
			},
		},
		{
			// The per-event model applies a1, b1 and b2 at once; then only
			// a3 is missing.
			name:    "out of order within a batch",
			batches: [][]events.Envelope{{ev(a, 2), ev(a, 1), ev(b, 1), ev(a, 4), ev(a, 3), ev(b, 2)}},
			want: [3]outcome{
				{healed: 2, skipped: 2, calls: map[string]int{"Versions": 1, "Apply": 1}},
				{healed: 1, skipped: 1, calls: map[string]int{"TryApply": 1, "Versions": 1, "Apply": 1}},
				{healed: 2, skipped: 2, calls: map[string]int{"TryApply": 1, "Versions": 1, "Apply": 1}},
			},
		},
	}
	for _, tt := range tests {
		for kind, want := range tt.want {
			t.Run(fmt.Sprintf("%s/%s", tt.name, []string{"plain", "per event", "all or nothing"}[kind]), func(t *testing.T) {
				mem := newMemModel(kind == 2)
				var model consumer.Model = mem
				if kind > 0 {
					model = optimistModel{mem}
				}
				reg := prometheus.NewRegistry()
				seq := consumer.NewSequencer(model, store, consumer.NewMetrics(reg, "test"))
				for i, batch := range tt.batches {
					if err := seq.HandleBatch(context.Background(), batch); err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
				}
				for id, n := range store {
					all := make([]int64, n)
					for i := range all {
						all[i] = int64(i) + 1
					}
					if !slices.Equal(mem.applied[id], all) {
						t.Fatalf("stream %s applied %v, want %v", id, mem.applied[id], all)
					}
				}
				// Every event is applied once, healed ones included.
				applied := counterValue(t, reg, "projector_events_applied_total")
				skipped := counterValue(t, reg, "projector_duplicates_skipped_total")
				healed := counterValue(t, reg, "projector_gap_events_healed_total")
				if applied != 6 || skipped != want.skipped || healed != want.healed {
					t.Fatalf("applied/skipped/healed = %v/%v/%v, want 6/%v/%v", applied, skipped, healed, want.skipped, want.healed)
				}
				if !maps.Equal(mem.calls, want.calls) {
					t.Fatalf("round trips = %v, want %v", mem.calls, want.calls)
				}
			})
		}
	}
}
