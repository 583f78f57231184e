package rebuilder_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

// fixedNow is the checkpoint clock of every model in these tests, so that
// the reference's checkpoint matches exactly.
var fixedNow = time.Date(2031, 5, 6, 7, 8, 9, 100_000_000, time.UTC)

// env is one test's deployment: a fresh event store database and a random
// STATS_KEY_PREFIX on the shared Redis (deleted afterwards).
type env struct {
	store     *eventstore.Store
	rdb       *redis.Client
	prefix    string
	activeKey string
	defaultNS string
	lockKey   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	rdb := statstest.NewRedis(t)
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	prefix := "test-rebuild-" + uuid.NewString() + ":"
	statstest.DeleteMatching(t, rdb, prefix+"*")
	activeKey, defaultNS := statskeys.Prefixed(prefix)
	return &env{store: eventstore.New(testenv.NewPool(t, url)), rdb: rdb, prefix: prefix,
		activeKey: activeKey, defaultNS: defaultNS, lockKey: prefix + statskeys.RebuildLockKey}
}

// ns is the namespace of generation n under the test's prefix.
func (e *env) ns(n int) string { return e.prefix + "s" + strconv.Itoa(n) }

// rebuilder returns a Rebuilder for the test's deployment with the test
// clock and a short grace period.
func (e *env) rebuilder(opts ...rebuilder.Option) *rebuilder.Rebuilder {
	base := []rebuilder.Option{
		rebuilder.WithModelOptions(statsmodel.WithClock(func() time.Time { return fixedNow })),
		rebuilder.WithGrace(300 * time.Millisecond),
		rebuilder.WithLease(3*time.Second, 10*time.Second),
	}
	return rebuilder.New(rebuild.ProjectionReads{Store: e.store}, e.rdb, e.prefix, testLogger(), append(base, opts...)...)
}

// liveModel is the live projector's model: it follows the active key.
func (e *env) liveModel() *statsmodel.Model {
	return statsmodel.New(e.rdb, statsmodel.ActiveNamespaceAt(e.activeKey, e.defaultNS),
		statsmodel.WithClock(func() time.Time { return fixedNow }))
}

// liveSequencer is what the live projector feeds: a Sequencer over the
// live model.
func (e *env) liveSequencer() *consumer.Sequencer {
	return consumer.NewSequencer(e.liveModel(), e.store, consumer.NewMetrics(prometheus.NewRegistry(), "test-live"))
}

// active reads the active namespace.
func (e *env) active(t testing.TB) string {
	t.Helper()
	ns, err := e.rdb.Get(context.Background(), e.activeKey).Result()
	if err == redis.Nil {
		return e.defaultNS
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// simulate appends n events of a fresh simulation to the store.
func (e *env) simulate(t testing.TB, seed uint64, customers, n int) *statstest.Simulation {
	t.Helper()
	sim := statstest.NewSimulation(seed, customers, statstest.StoreEmitter(e.store))
	if err := sim.Run(n); err != nil {
		t.Fatal(err)
	}
	return sim
}

// readAll reads the whole store in commit-safe order. Other tests'
// transactions on the same server can hold back the commit-safe horizon
// for a moment, so it reads until it has every event the store counts.
func (e *env) readAll(t testing.TB) []events.Envelope {
	t.Helper()
	ctx := context.Background()
	total, err := e.store.CountAfter(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all []events.Envelope
	var cursor eventstore.Cursor
	deadline := time.Now().Add(30 * time.Second)
	for int64(len(all)) < total {
		batch, next, err := e.store.ReadAll(ctx, cursor, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("read %d of %d events", len(all), total)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		all = append(all, batch...)
		cursor = next
	}
	return all
}

// applyLive feeds events to the live model in batches of n, as the live
// projector would.
func (e *env) applyLive(t testing.TB, evs []events.Envelope, n int) {
	t.Helper()
	seq := e.liveSequencer()
	for i := 0; i < len(evs); i += n {
		if err := seq.HandleBatch(context.Background(), evs[i:min(i+n, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
}

// keysUnder lists every key of the test's deployment.
func (e *env) keysUnder(t testing.TB) []string {
	return statstest.ScanKeys(t, e.rdb, e.prefix+"*")
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
