package rebuilder_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/services/projector-stats/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

// BenchmarkRebuild measures a whole rebuild (prepare, fill, swap, catch-up)
// into Redis from a store of STATS_REBUILD_EVENTS events (default 200,000,
// appended first by parallel simulations through Store.Append), and, for
// comparison, reading the same store alone. One op is one rebuild.
//
//	go test ./services/projector-stats/internal/rebuilder -run '^$' -bench Rebuild -benchtime 1x -timeout 30m
func BenchmarkRebuild(b *testing.B) {
	n := 200_000
	if s := os.Getenv("STATS_REBUILD_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("STATS_REBUILD_EVENTS=%q: %v", s, err)
		}
	}
	e := newEnv(b)
	ctx := context.Background()
	start := time.Now()
	const workers = 16
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			sim := statstest.NewSimulation(uint64(1000+w), 500, statstest.StoreEmitter(e.store))
			errs[w] = sim.Run(n / workers)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	all := e.readAll(b)
	b.Logf("appended %d events in %s", len(all), time.Since(start).Round(time.Millisecond))

	readStart := time.Now()
	var cursor eventstore.Cursor
	read := 0
	for {
		batch, next, err := e.store.ReadAll(ctx, cursor, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		read += len(batch)
		cursor = next
	}
	readRate := float64(read) / time.Since(readStart).Seconds()

	rb := e.rebuilder(rebuilder.WithGrace(0))
	var last rebuild.Progress
	b.ResetTimer()
	for b.Loop() {
		var tr rebuild.Tracker
		res, err := rb.Rebuild(ctx, &tr, func(p rebuild.Progress) {
			if p.Phase == "filling" {
				b.Logf("%-10s %8d / %d events %8.0f events/s", p.Phase, p.Events, p.Total, p.EventsPerSec)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		last = tr.Get()
		b.Logf("rebuilt %s: %d events in %s (%.0f events/s); old %s: %d keys deleted",
			res.Namespace, last.Events, last.FinishedAt.Sub(last.StartedAt).Round(time.Millisecond), last.EventsPerSec, res.OldNamespace, res.OldKeysDeleted)
	}
	b.StopTimer()
	b.ReportMetric(last.EventsPerSec, "events/s")
	b.ReportMetric(readRate, "store-read-events/s")
	statstest.AssertModel(b, e.rdb, e.active(b), statstest.Reference(e.active(b), all, fixedNow))
}
