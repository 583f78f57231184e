package ordersmodel_test

import (
	"context"
	"testing"
	"time"

	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// BenchmarkApply applies batches of 500 events of a realistic mix (a
// quarter new streams, the rest advancing live orders and accounts; a
// fifth of the streams are accounts) and reports events/s. One op is one
// batch. Run it with:
//
//	go test ./services/projector-orders/internal/ordersmodel -run '^$' -bench Apply -benchtime 400x
func BenchmarkApply(b *testing.B) {
	const batchSize = 500
	_, pool := newDB(b)
	m := ordersmodel.New(pool)
	ctx := context.Background()
	gen := newGenerator(42)
	// Warm up: live streams and table contents, so updates dominate as in
	// a running system.
	for range 20 {
		if err := m.Apply(ctx, gen.batch(batchSize)); err != nil {
			b.Fatal(err)
		}
	}
	batches := make([][]events.Envelope, b.N)
	for i := range batches {
		batches[i] = gen.batch(batchSize)
	}
	b.ResetTimer()
	start := time.Now()
	for _, batch := range batches {
		if err := m.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/time.Since(start).Seconds(), "events/s")
}
