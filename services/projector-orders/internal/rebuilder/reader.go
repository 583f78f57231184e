package rebuilder

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// Reader is the store as the rebuild and the replay read it: the same
// commit-safe order as eventstore.Store.ReadAll (the same predicate on
// (transaction_id, position) below the oldest transaction in flight, the
// same ORDER BY, the same cursor), but lean, because reading the whole
// store is most of a rebuild's work:
//
//   - it reads through the store's ReadAllForProjection, which selects and
//     decodes only what a read model folds;
//   - it reads ahead: one goroutine fetches batch after batch (each
//     continuing from the last row of the one before) while ReadAll hands
//     over the batches already read, so the database, the decoding and the
//     caller's work overlap.
//
// A batch read ahead is as valid as one read later: it is what a reader
// that had asked a moment earlier would have got, and continuing from its
// cursor misses nothing.
//
// An empty batch, though, does not mean that every event committed so far
// has been read: a commit-safe reader sees nothing past the oldest write
// transaction still running anywhere in the cluster (another database's
// included), and a drain (internal/rebuild) stops at the first empty batch.
// A rebuild whose catch-up stopped that early would swap in tables without
// events the live projector had applied to the replaced ones. So a Reader
// reports the end only once it is past its barrier: every event committed
// before its first ReadAll, or before its last Barrier call, has been read.
// Until then an empty batch is read again, a little later.
//
// CountAfter and ReadStream (gap healing) are the store's own. ReadAll and
// Barrier must be called from one goroutine at a time (the drain loop
// does); Close stops a pipeline whose batches nobody will take.
type Reader struct {
	Store
	pool    *pgxpool.Pool
	log     *slog.Logger
	p       *pipeline
	barrier uint64 // a transaction id; 0: not set yet
	passed  bool   // every transaction below barrier has ended
}

// pipeline reads ahead from a cursor; expect is the cursor the next batch
// it hands over continues from.
type pipeline struct {
	expect eventstore.Cursor
	limit  int
	cancel context.CancelFunc
	out    chan readResult
	done   chan struct{} // closed when both goroutines have returned
}

type readResult struct {
	batch []events.Envelope
	next  eventstore.Cursor
	err   error
}

// NewReader returns a Reader over the events table of pool's database,
// delegating the rest to store.
func NewReader(store Store, pool *pgxpool.Pool) *Reader {
	return &Reader{Store: store, pool: pool, log: slog.New(slog.DiscardHandler)}
}

// Barrier makes ReadAll report the end of the store (an empty batch) only
// after it has read every event committed before the call: it waits, if it
// must, for the write transactions running at the call to end.
func (r *Reader) Barrier(ctx context.Context) error {
	var next string
	if err := r.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&next); err != nil {
		return fmt.Errorf("read barrier: %w", err)
	}
	x, err := strconv.ParseUint(next, 10, 64)
	if err != nil {
		return fmt.Errorf("read barrier %q: %w", next, err)
	}
	r.barrier, r.passed = x, false
	return nil
}

// barrierPoll is how often an empty read is retried while the reader is
// not past its barrier.
const barrierPoll = 20 * time.Millisecond

// ReadAll implements rebuild.Store.
func (r *Reader) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	if r.barrier == 0 {
		if err := r.Barrier(ctx); err != nil {
			return nil, after, err
		}
	}
	waitingSince := time.Now()
	for {
		batch, next, err := r.read(ctx, after, limit)
		if err != nil || len(batch) > 0 || r.passed {
			return batch, next, err
		}
		// Empty, and maybe only because an older transaction is still
		// running. Once none below the barrier is, one more read is
		// conclusive: the horizon only moves forward.
		var passed bool
		if err := r.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8`,
			strconv.FormatUint(r.barrier, 10)).Scan(&passed); err != nil {
			return nil, after, fmt.Errorf("read horizon: %w", err)
		}
		if passed {
			r.passed = true
			continue
		}
		if time.Since(waitingSince) > 10*time.Second {
			r.log.Warn("rebuild: waiting for write transactions older than the rebuild's barrier to end; commit-safe reads cannot pass them",
				"barrier", r.barrier, "waiting", time.Since(waitingSince).Round(time.Second).String())
			waitingSince = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, after, ctx.Err()
		case <-time.After(barrierPoll):
		}
	}
}

// read takes the next batch from the pipeline, starting one if none is
// reading from after.
func (r *Reader) read(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	if r.p == nil || r.p.expect != after || r.p.limit != limit {
		r.Close()
		r.p = r.start(ctx, after, limit)
	}
	var res readResult
	select {
	case res = <-r.p.out:
	case <-ctx.Done():
		r.Close()
		return nil, after, ctx.Err()
	}
	if res.err != nil || len(res.batch) == 0 {
		r.Close() // the pipeline has stopped
		if res.err != nil {
			return nil, after, res.err
		}
		return nil, after, nil
	}
	r.p.expect = res.next
	return res.batch, res.next, nil
}

// Close stops the pipeline, if one runs; the Reader can be used again.
func (r *Reader) Close() {
	if r.p != nil {
		r.p.cancel()
		<-r.p.done
		r.p = nil
	}
}

func (r *Reader) start(ctx context.Context, after eventstore.Cursor, limit int) *pipeline {
	ctx, cancel := context.WithCancel(ctx)
	p := &pipeline{expect: after, limit: limit, cancel: cancel, out: make(chan readResult, 1), done: make(chan struct{})}
	go func() { // fetch until an empty batch or an error
		defer close(p.done)
		cursor := after
		for {
			batch, next, err := r.Store.ReadAllForProjection(ctx, cursor, limit)
			select {
			case p.out <- readResult{batch: batch, next: next, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(batch) == 0 {
				return
			}
			cursor = next
		}
	}()
	return p
}
