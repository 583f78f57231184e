package searchmodel_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

// BenchmarkApply measures Apply on batches of 500 events against the real
// node (mget + one bulk per batch); it reports events/s.
//
//	go test ./services/search-indexer/internal/searchmodel -run '^$' -bench BenchmarkApply -benchtime 40x -count 1
func BenchmarkApply(b *testing.B) {
	const batch = 500
	cust := uuid.New()
	placed := events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{lamp, bulb}, Currency: "EUR", TaxCents: 100}
	shapes := []struct {
		name string
		// make returns one batch; pos is the next free position.
		make func(pos *int64) []events.Envelope
	}{
		{"lifecycles-of-new-orders", func(pos *int64) []events.Envelope {
			// placed, paid, shipped per order: 3 events per document.
			out := make([]events.Envelope, 0, batch)
			for len(out) < batch {
				s := newStream(events.StreamOrder)
				for _, p := range []events.Payload{placed, events.OrderPaid{AmountCents: 3197, Method: "card"},
					events.OrderShipped{Carrier: "DHL", TrackingNumber: "1"}} {
					if len(out) < batch {
						*pos++
						out = append(out, s.next(*pos, p))
					}
				}
			}
			return out
		}},
		{"one-event-per-order", func(pos *int64) []events.Envelope {
			// 500 documents per bulk: the most documents per event.
			out := make([]events.Envelope, batch)
			for i := range out {
				*pos++
				out[i] = newStream(events.StreamOrder).next(*pos, placed)
			}
			return out
		}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			_, _, model := setup(b)
			var pos int64
			batches := make([][]events.Envelope, b.N)
			for i := range batches {
				batches[i] = sh.make(&pos)
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if err := model.Apply(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
