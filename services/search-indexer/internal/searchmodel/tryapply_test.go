package searchmodel_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
)

// TryApply writes, without reading first, the orders of which the batch
// holds just the first event, and reports exactly those events; a
// redelivery is refused by the external version and reported as not
// applied, and every other event (later events, a new order's first events
// together, account events) is left alone for Versions and Apply.
func TestTryApply(t *testing.T) {
	t.Parallel()
	h := newHistory()
	// h.evs: x1 y1 x2 z1 y2 x3 z2 z3 (stream, version), positions 1-8
	x1, y1, x2, z1, y2 := h.evs[0], h.evs[1], h.evs[2], h.evs[3], h.evs[4]
	account := newStream(events.StreamAccount).next(9, events.AccountOpened{Owner: "o", Currency: "EUR"})
	tests := []struct {
		name    string
		before  []events.Envelope // applied with Apply first
		batch   []events.Envelope
		want    []bool
		written []events.Envelope // the first events whose documents the batch writes
	}{
		{name: "new orders", batch: []events.Envelope{x1, y1, z1},
			want: []bool{true, true, true}, written: []events.Envelope{x1, y1, z1}},
		{name: "redelivered", before: []events.Envelope{x1, y1}, batch: []events.Envelope{x1, y1},
			want: []bool{false, false}},
		{name: "redelivered onto a later version", before: []events.Envelope{x1, x2}, batch: []events.Envelope{x1},
			want: []bool{false}},
		{name: "later events", before: []events.Envelope{x1, y1}, batch: []events.Envelope{x2, y2},
			want: []bool{false, false}},
		{name: "a new order beside later events", before: []events.Envelope{x1, y1}, batch: []events.Envelope{x2, z1, y2},
			want: []bool{false, true, false}, written: []events.Envelope{z1}},
		{name: "a new order's first events together", batch: []events.Envelope{x1, x2},
			want: []bool{false, false}},
		{name: "account event", batch: []events.Envelope{account, y1},
			want: []bool{false, true}, written: []events.Envelope{y1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, names, model := setup(t)
			ctx := context.Background()
			if len(tc.before) > 0 {
				if err := model.Apply(ctx, tc.before); err != nil {
					t.Fatal(err)
				}
			}
			var stored []searchdoc.Order
			for _, e := range []events.Envelope{x1, y1, z1} {
				d, _, _ := getDoc(t, client, names, e.StreamID)
				stored = append(stored, d)
			}
			got, err := model.TryApply(ctx, tc.batch)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("applied %v, want %v", got, tc.want)
			}
			for i, e := range []events.Envelope{x1, y1, z1} {
				d, version, exists := getDoc(t, client, names, e.StreamID)
				if !slices.ContainsFunc(tc.written, func(w events.Envelope) bool { return w.StreamID == e.StreamID }) {
					if !reflect.DeepEqual(d, stored[i]) {
						t.Errorf("order %s changed:\n got %+v\nwant %+v", e.StreamID, d, stored[i])
					}
					continue
				}
				if !exists || version != 1 || d.Version != 1 || d.OrderID != e.StreamID.String() || d.Status != "placed" {
					t.Errorf("order %s: document %+v at _version %d (exists %v), want a placed order at version 1", e.StreamID, d, version, exists)
				}
			}
		})
	}
}
