// Package rebuilder rebuilds projector-stats' Redis model from the event
// store while the live projector keeps consuming and queries keep being
// served, and replays the live model from a position. It plugs the stats
// model into the shared protocol of internal/rebuild:
//
//   - Prepare takes the deployment's rebuild lease, picks the next namespace
//     (s2 after s1, s3 after s2, ... under STATS_KEY_PREFIX) and deletes
//     whatever keys stale namespaces left: an aborted fill, or an old
//     namespace whose deletion was interrupted.
//   - Fill applies the store, in commit-safe order, to a model pinned to the
//     new namespace (statsmodel.FixedNamespace: its scripts never read the
//     active-namespace key, so the fill cannot be redirected).
//   - Swap is one SET of the active-namespace key. Readers and the live
//     projector's scripts resolve that key on every read and every event, so
//     they move over between two operations, never inside one.
//   - Live is a Sequencer over the model that follows the active key: the
//     catch-up after the swap goes wherever the live projector writes.
//
// The old namespace is deleted in the background after a grace period, so
// that a reader that resolved it just before the swap can still finish its
// read; the swap never waits for the deletion.
//
// Why the catch-up loses nothing the live projector applied: the live
// projector only receives events the outbox relay has read, in the same
// commit-safe order, so any event it applied to the old namespace, or
// applied in a batch whose versions it read there just before the swap, was
// readable before the swap and is read again by the catch-up, which starts
// after it. Everything after that goes to the new namespace, where the
// per-stream version check makes every overlap a no-op. Events that become
// commit-safe only after the catch-up has ended (held back by an older
// transaction still in flight) reach the new namespace the way they would
// have reached the old one: through the live projector.
package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

// Store is the event store as a rebuild reads it: the whole store in
// commit-safe order, and single streams to heal gaps.
type Store interface {
	rebuild.Store
	consumer.StreamReader
}

// Redis is the part of a go-redis client a rebuild uses (*redis.Client
// satisfies it).
type Redis interface {
	redis.Cmdable
}

// Rebuilder rebuilds and replays the stats model of one deployment (one
// STATS_KEY_PREFIX). It is safe for concurrent use; concurrent rebuilds of
// one deployment, from this process or another, are serialised by a lease
// in Redis.
type Rebuilder struct {
	store     Store
	rdb       Redis
	prefix    string
	activeKey string
	defaultNS string
	lockKey   string
	log       *slog.Logger
	metrics   *consumer.Metrics

	grace     time.Duration
	leaseTTL  time.Duration
	leaseWait time.Duration
	batchSize int
	modelOpts []statsmodel.Option
}

// Option configures a Rebuilder.
type Option func(*Rebuilder)

// WithGrace sets how long the old namespace stays after the swap before it
// is deleted (default 5s): longer than any reader takes between resolving
// the active namespace and reading from it.
func WithGrace(d time.Duration) Option { return func(r *Rebuilder) { r.grace = d } }

// WithBatchSize sets how many events are read from the store and applied in
// one Redis pipeline (default 5000).
func WithBatchSize(n int) Option { return func(r *Rebuilder) { r.batchSize = n } }

// WithLease sets the rebuild lease's time to live (renewed every third of
// it; default 30s) and how long a rebuild waits for a lease another one
// holds before it gives up (default 30s).
func WithLease(ttl, wait time.Duration) Option {
	return func(r *Rebuilder) { r.leaseTTL, r.leaseWait = ttl, wait }
}

// WithModelOptions passes options to every stats model the rebuilder
// creates (tests set the checkpoint clock).
func WithModelOptions(opts ...statsmodel.Option) Option {
	return func(r *Rebuilder) { r.modelOpts = append(r.modelOpts, opts...) }
}

// New returns a Rebuilder of the stats model under keyPrefix
// (STATS_KEY_PREFIX).
func New(store Store, rdb Redis, keyPrefix string, log *slog.Logger, opts ...Option) *Rebuilder {
	activeKey, defaultNS := statskeys.Prefixed(keyPrefix)
	r := &Rebuilder{
		store: store, rdb: rdb, prefix: keyPrefix, activeKey: activeKey, defaultNS: defaultNS,
		lockKey: keyPrefix + statskeys.RebuildLockKey, log: log,
		// The live consumer registers its metrics under the same names on the
		// process registry; a rebuild's counts are in its progress instead.
		metrics: consumer.NewMetrics(prometheus.NewRegistry(), "projector-stats-rebuild"),
		grace:   5 * time.Second, leaseTTL: 30 * time.Second, leaseWait: 30 * time.Second, batchSize: 5000,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// liveModel follows the active-namespace key, like the live projector.
func (r *Rebuilder) liveModel() *statsmodel.Model {
	return statsmodel.New(r.rdb, statsmodel.ActiveNamespaceAt(r.activeKey, r.defaultNS), r.modelOpts...)
}

// Result describes a finished rebuild.
type Result struct {
	// Namespace is the namespace filled and made active.
	Namespace string
	// OldNamespace was active before the swap ("" when the swap did not happen).
	OldNamespace string
	// OldKeysDeleted counts the keys of OldNamespace deleted after the swap.
	OldKeysDeleted int64
	// StaleKeysDeleted counts the keys of stale namespaces (left by an
	// interrupted rebuild) deleted before the fill.
	StaleKeysDeleted int64
	// FillFallbacks counts fill batches that were not in per-stream version
	// order and went through the Sequencer instead (expected: 0).
	FillFallbacks int64
}

// Rebuild fills a fresh namespace from the whole store, makes it the active
// one and catches it up; report (may be nil) gets the progress about once a
// second, and tr holds it for the admin endpoint. It returns once the old
// namespace is deleted (after the grace period), so a CLI run leaves nothing
// behind; the tracker says "done" as soon as the catch-up has finished.
//
// If the rebuild fails before the swap, the partly filled namespace is
// deleted and the live model is untouched. If it fails after the swap, the
// new namespace is live and complete up to the catch-up's progress; the
// live projector keeps it current (healing any gap from the store).
func (r *Rebuilder) Rebuild(ctx context.Context, tr *rebuild.Tracker, report func(rebuild.Progress)) (Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &target{r: r, cancel: cancel}
	err := rebuild.Run(ctx, r.store, t, tr, rebuild.Options{BatchSize: r.batchSize, Report: report, Log: r.log})
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	res, ferr := t.finish(ctx)
	return res, errors.Join(err, ferr)
}

// Replay applies every event after position from to the live model
// (wherever the active-namespace key points), through a Sequencer: events
// the model already has are skipped by version, and a stream the model
// lacks entirely is healed from its first event if it has any event after
// from. Streams whose events all precede from are not touched.
func (r *Rebuilder) Replay(ctx context.Context, from int64, tr *rebuild.Tracker, report func(rebuild.Progress)) error {
	live := consumer.NewSequencer(r.liveModel(), r.store, r.metrics)
	err := rebuild.Replay(ctx, r.store, live, from, tr, rebuild.Options{BatchSize: r.batchSize, Report: report, Log: r.log})
	if report != nil {
		report(tr.Get()) // Replay reports while running only
	}
	return err
}

// Admin returns the admin endpoint (POST /admin/rebuild, POST
// /admin/replay?from_position=P, GET /admin/rebuild) whose jobs run under
// ctx, the process's lifetime, and log their progress every 10 seconds.
func (r *Rebuilder) Admin(ctx context.Context) *rebuild.Admin {
	return rebuild.NewAdmin(ctx, r.log,
		func(ctx context.Context, tr *rebuild.Tracker) error {
			res, err := r.Rebuild(ctx, tr, r.logProgress("rebuild"))
			if err == nil {
				r.log.Info("stats rebuild complete", "namespace", res.Namespace, "old_namespace", res.OldNamespace,
					"old_keys_deleted", res.OldKeysDeleted, "stale_keys_deleted", res.StaleKeysDeleted)
			}
			return err
		},
		func(ctx context.Context, from int64, tr *rebuild.Tracker) error {
			return r.Replay(ctx, from, tr, r.logProgress("replay"))
		})
}

func (r *Rebuilder) logProgress(what string) func(rebuild.Progress) {
	var mu sync.Mutex
	var last time.Time
	return func(p rebuild.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 10*time.Second {
			return
		}
		last = time.Now()
		r.log.Info(what+" progress", "phase", p.Phase, "events", p.Events, "total_estimate", p.Total,
			"position", p.Position, "events_per_second", int64(p.EventsPerSec), "eta_seconds", int64(p.ETASeconds))
	}
}
