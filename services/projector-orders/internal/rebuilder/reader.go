package rebuilder

import (
	"context"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
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
// cursor misses nothing. An empty batch means what it means for the store
// (the drain in internal/rebuild waits past its barrier before it takes
// one for the end).
//
// CountAfter, ReadBarrier, PastBarrier and ReadStream (gap healing) are the
// store's own. ReadAll must be called from one goroutine at a time (the
// drain loop does); Close stops a pipeline whose batches nobody will take.
type Reader struct {
	Store
	p *pipeline
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

// NewReader returns a Reader over store.
func NewReader(store Store) *Reader { return &Reader{Store: store} }

// ReadAll implements rebuild.Store.
func (r *Reader) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	return r.read(ctx, after, limit)
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
