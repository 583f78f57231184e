package statsmodel_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkApply measures Apply over batches of fresh events (a realistic
// mix of order and account events, each applied once). One op is one batch;
// events/s is the throughput.
//
//	go test ./services/projector-stats/internal/statsmodel -run '^$' -bench Apply -benchtime 200x
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{500, 1} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			m, _, _ := newModel(b)
			emit, all := memoryEmitter()
			sim := newSimulation(1, 1000, emit)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				from := len(*all)
				sim.run(size)
				batch := (*all)[from:]
				b.StartTimer()
				if err := m.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
