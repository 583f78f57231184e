package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

// target is one rebuild's rebuild.Target. rebuild.Run calls its methods one
// after the other, never concurrently.
type target struct {
	r      *Rebuilder
	cancel context.CancelCauseFunc // ends the rebuild when the lease is lost

	lease   *lease
	active  string // active namespace when the rebuild started
	ns      string // the namespace filled
	stale   int64
	fill    *fillSink
	swapped bool
	old     string
	cleaned chan cleanup // the old namespace's deletion, once swapped
}

type cleanup struct {
	keys int64
	err  error
}

var _ rebuild.Target = (*target)(nil)

// Prepare implements rebuild.Target: it takes the lease, picks the next
// namespace and deletes stale namespaces' keys (including leftovers of the
// one picked).
func (t *target) Prepare(ctx context.Context) error {
	r := t.r
	l, err := acquireLease(ctx, r.rdb, r.lockKey, r.leaseTTL, r.leaseWait, t.cancel)
	if err != nil {
		return err
	}
	t.lease = l
	if t.active, err = r.activeNamespace(ctx); err != nil {
		return err
	}
	t.ns = nextNamespace(r.prefix, t.active)
	if t.stale, err = sweepStale(ctx, r.rdb, r.prefix, t.active); err != nil {
		return err
	}
	model := statsmodel.New(r.rdb, statsmodel.FixedNamespace(t.ns), r.modelOpts...)
	t.fill = &fillSink{model: model, seq: consumer.NewSequencer(model, r.store, r.metrics)}
	r.log.Info("stats rebuild prepared", "namespace", t.ns, "active_namespace", t.active, "stale_keys_deleted", t.stale)
	return nil
}

// Fill implements rebuild.Target.
func (t *target) Fill() rebuild.Sink { return t.fill }

// Swap implements rebuild.Target: one SET makes the filled namespace the
// active one and returns the namespace it replaces, whose deletion starts
// in the background after the grace period.
func (t *target) Swap(ctx context.Context) error {
	r := t.r
	if err := t.fill.flush(); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	old, err := r.rdb.SetArgs(ctx, r.activeKey, t.ns, redis.SetArgs{Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil) || (err == nil && old == ""):
		old = r.defaultNS
	case err != nil:
		return fmt.Errorf("set %s to %s: %w", r.activeKey, t.ns, err)
	}
	t.swapped, t.old = true, old
	r.log.Info("stats namespace swapped", "namespace", t.ns, "old_namespace", old)
	t.cleaned = make(chan cleanup, 1)
	if old == t.ns {
		t.cleaned <- cleanup{}
		return nil
	}
	go func() {
		select {
		case <-ctx.Done():
			t.cleaned <- cleanup{err: fmt.Errorf("delete old namespace %s: %w", old, context.Cause(ctx))}
			return
		case <-time.After(r.grace):
		}
		n, err := deleteNamespace(ctx, r.rdb, old)
		t.cleaned <- cleanup{keys: n, err: err}
	}()
	return nil
}

// Live implements rebuild.Target: the catch-up goes through a Sequencer to
// the model that follows the active-namespace key, as the live projector's
// events do.
func (t *target) Live() rebuild.Sink {
	return consumer.NewSequencer(t.r.liveModel(), t.r.store, t.r.metrics)
}

// finish waits for the old namespace's deletion, or deletes the partly
// filled namespace if the swap did not happen, and releases the lease.
// Both deletions run under the lease: without it, another rebuild may have
// picked the same namespace name by now.
func (t *target) finish(ctx context.Context) (Result, error) {
	res := Result{Namespace: t.ns, StaleKeysDeleted: t.stale}
	if t.fill != nil {
		// A failed read may leave a batch in flight; its error, if any, is
		// not the rebuild's first.
		_ = t.fill.flush()
		res.FillFallbacks = t.fill.fallbacks.Load()
	}
	if t.lease == nil {
		return res, nil
	}
	var errs []error
	switch {
	case t.swapped:
		c := <-t.cleaned
		res.OldNamespace, res.OldKeysDeleted = t.old, c.keys
		if c.err != nil {
			errs = append(errs, c.err) // the next rebuild's sweep deletes the rest
		} else {
			t.r.log.Info("old stats namespace deleted", "namespace", t.old, "keys", c.keys)
		}
	case t.ns != "" && t.lease.held():
		// Delete even when ctx has ended (a failure, SIGTERM), briefly.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// A swap whose reply was lost may still have happened.
		if active, err := t.r.activeNamespace(dctx); err != nil || active == t.ns {
			errs = append(errs, fmt.Errorf("keep namespace %s: it may be active (%v)", t.ns, err))
			break
		}
		if n, err := deleteNamespace(dctx, t.r.rdb, t.ns); err != nil {
			errs = append(errs, err)
		} else {
			t.r.log.Info("unfinished stats namespace deleted", "namespace", t.ns, "keys", n)
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.lease.release(rctx); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// fillSink applies batches straight to the fresh namespace's model. In
// commit-safe order every stream's events arrive as versions 1, 2, ...
// (a writer must see version n committed before it can append n+1), so the
// Sequencer's version read is not needed. Should a batch still contain an
// event the model's version check refuses, the batch goes through the
// Sequencer, which skips what was applied and heals the gap from the store.
//
// A batch is applied in the background while the rebuild reads the next
// one from the store: one batch in flight at most, applied in order. Its
// error surfaces at the next HandleBatch or at flush.
type fillSink struct {
	model     *statsmodel.Model
	seq       *consumer.Sequencer
	fallbacks atomic.Int64
	inflight  chan error // the running batch's outcome; nil when none
}

func (f *fillSink) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	if err := f.flush(); err != nil {
		return err
	}
	done := make(chan error, 1)
	f.inflight = done
	go func() { done <- f.apply(ctx, batch) }()
	return nil
}

// flush waits for the batch in flight.
func (f *fillSink) flush() error {
	if f.inflight == nil {
		return nil
	}
	err := <-f.inflight
	f.inflight = nil
	return err
}

func (f *fillSink) apply(ctx context.Context, batch []events.Envelope) error {
	n, err := f.model.ApplyCount(ctx, batch)
	if err != nil {
		return err
	}
	if n == len(batch) {
		return nil
	}
	f.fallbacks.Add(1)
	return f.seq.HandleBatch(ctx, batch)
}

// activeNamespace reads the active-namespace key (the default while unset).
func (r *Rebuilder) activeNamespace(ctx context.Context) (string, error) {
	ns, err := r.rdb.Get(ctx, r.activeKey).Result()
	if errors.Is(err, redis.Nil) || (err == nil && ns == "") {
		return r.defaultNS, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.activeKey, err)
	}
	return ns, nil
}

// generation parses a namespace name of the form s<n> (n ≥ 1).
func generation(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, "s")
	if !ok || digits == "" || digits[0] == '0' {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// nextNamespace is the namespace after active: s<n+1> for s<n>, s2 for
// anything else (such as a namespace set by hand).
func nextNamespace(prefix, active string) string {
	n, ok := int64(0), false
	if rest, found := strings.CutPrefix(active, prefix); found {
		n, ok = generation(rest)
	}
	if !ok {
		n = 1
	}
	return prefix + "s" + strconv.FormatInt(n+1, 10)
}

// globEscape quotes the glob metacharacters of Redis's MATCH and KEYS.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '\\', '*', '?', '[', ']':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// unlinkBatch is how many keys one UNLINK removes.
const unlinkBatch = 1000

// deleteNamespace unlinks every key of namespace ns (UNLINK frees memory in
// the background) and returns how many it removed.
func deleteNamespace(ctx context.Context, rdb Redis, ns string) (int64, error) {
	return deleteScanned(ctx, rdb, globEscape(ns)+":*", func(string) bool { return true })
}

// sweepStale deletes the keys of every namespace s<n> under prefix other
// than active: what an interrupted rebuild left (a partly filled namespace,
// or an old one whose deletion did not finish). The rebuild lease
// guarantees no other rebuild is filling one of them.
func sweepStale(ctx context.Context, rdb Redis, prefix, active string) (int64, error) {
	n, err := deleteScanned(ctx, rdb, globEscape(prefix)+"s[1-9]*", func(key string) bool {
		ns, _, ok := strings.Cut(key[len(prefix):], ":")
		if !ok || prefix+ns == active {
			return false
		}
		_, ok = generation(ns)
		return ok
	})
	if err != nil {
		return n, fmt.Errorf("delete stale stats namespaces: %w", err)
	}
	return n, nil
}

func deleteScanned(ctx context.Context, rdb Redis, pattern string, selected func(key string) bool) (int64, error) {
	var deleted int64
	batch := make([]string, 0, unlinkBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := rdb.Unlink(ctx, batch...).Result()
		deleted += n
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("unlink keys matching %s: %w", pattern, err)
		}
		return nil
	}
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		if !selected(iter.Val()) {
			continue
		}
		batch = append(batch, iter.Val())
		if len(batch) == unlinkBatch {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return deleted, fmt.Errorf("scan keys matching %s: %w", pattern, err)
	}
	return deleted, flush()
}
