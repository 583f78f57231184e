package statsmodel_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

// fixedNow is the checkpoint clock of every test model.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

// newRedis connects to the test Redis.
func newRedis(t testing.TB) *redis.Client { return statstest.NewRedis(t) }

// newNamespace returns a namespace of this test alone, deleted afterwards.
func newNamespace(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	ns := "test-" + uuid.NewString()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range scanKeys(t, rdb, ns) {
			rdb.Unlink(ctx, k)
		}
	})
	return ns
}

// newModel returns a model over a fresh fixed namespace.
func newModel(t testing.TB, opts ...statsmodel.Option) (*statsmodel.Model, *redis.Client, string) {
	t.Helper()
	rdb := newRedis(t)
	ns := newNamespace(t, rdb)
	opts = append([]statsmodel.Option{statsmodel.WithClock(func() time.Time { return fixedNow })}, opts...)
	return statsmodel.New(rdb, statsmodel.FixedNamespace(ns), opts...), rdb, ns
}

func scanKeys(t testing.TB, rdb *redis.Client, ns string) []string {
	t.Helper()
	return statstest.ScanKeys(t, rdb, ns+":*")
}

// The reference, the dump and the simulation are shared with the rebuild
// tests (package statstest).
var (
	assertModel    = statstest.AssertModel
	reference      = statstest.Reference
	requireVariety = statstest.RequireVariety
)

// emitFunc records one decided event on a stream at expected version and
// returns it as stored (with version, position and recorded_at); it fails
// the test itself.
type emitFunc func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope

// memoryEmitter numbers events like a store would (see statstest.MemoryEmitter).
func memoryEmitter() (emitFunc, *[]events.Envelope) {
	emit, all := statstest.MemoryEmitter()
	return func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope {
		e, _ := emit(st, id, expected, p) // never fails
		return e
	}, all
}

// simulation is statstest.Simulation over an emitFunc.
type simulation struct{ *statstest.Simulation }

func newSimulation(seed uint64, customers int, emit emitFunc) simulation {
	return simulation{statstest.NewSimulation(seed, customers,
		func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) (events.Envelope, error) {
			return emit(st, id, expected, p), nil
		})}
}

// run takes n random steps; each step appends one event.
func (s simulation) run(n int) {
	if err := s.Run(n); err != nil {
		panic(err) // emitFuncs fail the test themselves
	}
}

// interleave returns all events in a random order that keeps each stream's
// own order, like consumers of different partitions would deliver them.
func interleave(rng *rand.Rand, all []events.Envelope) []events.Envelope {
	var ids []uuid.UUID
	queues := map[uuid.UUID][]events.Envelope{}
	for _, e := range all {
		if _, ok := queues[e.StreamID]; !ok {
			ids = append(ids, e.StreamID)
		}
		queues[e.StreamID] = append(queues[e.StreamID], e)
	}
	out := make([]events.Envelope, 0, len(all))
	for len(ids) > 0 {
		i := rng.IntN(len(ids))
		id := ids[i]
		out = append(out, queues[id][0])
		queues[id] = queues[id][1:]
		if len(queues[id]) == 0 {
			ids[i] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
		}
	}
	return out
}

// applyInBatches applies evs in consecutive batches of size n and returns
// how many events changed the model.
func applyInBatches(t testing.TB, m *statsmodel.Model, evs []events.Envelope, n int) int {
	t.Helper()
	applied := 0
	for i := 0; i < len(evs); i += n {
		c, err := m.ApplyCount(context.Background(), evs[i:min(i+n, len(evs))])
		if err != nil {
			t.Fatalf("apply events %d..: %v", i, err)
		}
		applied += c
	}
	return applied
}
