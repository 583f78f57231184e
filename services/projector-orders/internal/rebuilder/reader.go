package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
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
//   - it selects and decodes only what the read model folds (positions,
//     stream, version, type, payload, recorded_at): no event id, occurred_at
//     or metadata, which the model never reads;
//   - it reads ahead, in a pipeline: one goroutine fetches batch after
//     batch (each continuing from the last row of the one before), another
//     decodes the payloads of a fetched batch on every core, and ReadAll
//     hands over decoded batches in order, so the database, the decoding
//     and the caller's work overlap.
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
	pool     *pgxpool.Pool
	registry *events.Registry
	log      *slog.Logger
	p        *pipeline
	barrier  uint64 // a transaction id; 0: not set yet
	passed   bool   // every transaction below barrier has ended
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
	return &Reader{Store: store, pool: pool, registry: events.Default, log: slog.New(slog.DiscardHandler)}
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

// rawRow is a fetched event whose payload is not decoded yet.
type rawRow struct {
	env  events.Envelope
	data []byte
}

type rawBatch struct {
	rows []rawRow
	next eventstore.Cursor
	err  error
}

func (r *Reader) start(ctx context.Context, after eventstore.Cursor, limit int) *pipeline {
	ctx, cancel := context.WithCancel(ctx)
	p := &pipeline{expect: after, limit: limit, cancel: cancel, out: make(chan readResult, 1), done: make(chan struct{})}
	fetched := make(chan rawBatch, 1)
	fetcherDone := make(chan struct{})
	go func() { // fetch until an empty batch or an error
		defer close(fetcherDone)
		defer close(fetched)
		cursor := after
		for {
			b := r.fetch(ctx, cursor, limit)
			select {
			case fetched <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil || len(b.rows) == 0 {
				return
			}
			cursor = b.next
		}
	}()
	go func() { // decode in order
		defer close(p.done)
		defer func() { <-fetcherDone }()
		for b := range fetched {
			res := readResult{next: b.next, err: b.err}
			if b.err == nil {
				res.batch, res.err = r.decode(b.rows)
			}
			select {
			case p.out <- res:
			case <-ctx.Done():
				return
			}
			if res.err != nil {
				cancel()
				return
			}
		}
	}()
	return p
}

// readAllSQL is eventstore.Store.ReadAll's query with fewer columns. The
// transaction id is aliased: a bare "transaction_id" in ORDER BY would
// name the bigint output column, which no index sorts.
const readAllSQL = `SELECT transaction_id::text::bigint AS txid, position, stream_type, stream_id, version, type, schema_version, data, recorded_at
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3`

// fetch reads the rows of one batch, leaving the payloads to decode.
func (r *Reader) fetch(ctx context.Context, after eventstore.Cursor, limit int) rawBatch {
	rows, err := r.pool.Query(ctx, readAllSQL, strconv.FormatUint(after.TransactionID, 10), after.Position, limit)
	if err != nil {
		return rawBatch{err: fmt.Errorf("read all after %+v: %w", after, err)}
	}
	defer rows.Close()
	out := make([]rawRow, 0, limit)
	next := after
	var (
		txid       uint64
		streamType string
	)
	for rows.Next() {
		var raw rawRow
		e := &raw.env
		if err := rows.Scan(&txid, &e.Position, &streamType, &e.StreamID, &e.Version, &e.Type, &e.SchemaVersion, &raw.data, &e.RecordedAt); err != nil {
			return rawBatch{err: fmt.Errorf("read all after %+v: %w", after, err)}
		}
		e.StreamType = events.StreamType(streamType)
		e.RecordedAt = e.RecordedAt.UTC()
		out = append(out, raw)
		next = eventstore.Cursor{TransactionID: txid, Position: e.Position}
	}
	if err := rows.Err(); err != nil {
		return rawBatch{err: fmt.Errorf("read all after %+v: %w", after, err)}
	}
	return rawBatch{rows: out, next: next}
}

// decodeWorkers is how many goroutines decode one batch's payloads.
var decodeWorkers = max(1, runtime.GOMAXPROCS(0))

// decode turns fetched rows into envelopes, with the registry (upcasting
// old schema versions), split over decodeWorkers goroutines.
func (r *Reader) decode(rows []rawRow) ([]events.Envelope, error) {
	out := make([]events.Envelope, len(rows))
	errs := make([]error, decodeWorkers)
	per := (len(rows) + decodeWorkers - 1) / decodeWorkers
	var wg sync.WaitGroup
	for w := range decodeWorkers {
		lo, hi := min(w*per, len(rows)), min((w+1)*per, len(rows))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				e := rows[i].env
				p, err := r.registry.Decode(e.Type, e.SchemaVersion, rows[i].data)
				if err != nil {
					errs[w] = fmt.Errorf("event %d: %w", e.Position, err)
					return
				}
				e.Data, e.SchemaVersion = p, r.registry.CurrentVersion(e.Type)
				out[i] = e
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
