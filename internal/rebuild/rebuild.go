// Package rebuild replays the event store (not Kafka, whose retention ends)
// into a fresh copy of a read model and swaps it in while the live projector
// keeps running and queries keep being served.
//
// The protocol, the same for every model:
//
//  1. Fill: read the whole store in commit-safe order and apply it to a fresh
//     target (new tables, a new Redis namespace, a new index) that no reader
//     sees yet. Progress (events/s, position, ETA) is reported as it goes.
//  2. Swap: make the target the live model in one atomic step (table renames
//     in one transaction, a namespace pointer, an alias move). From here the
//     live projector writes into it too.
//  3. Catch up: read the store again from where the fill stopped, until it
//     is exhausted, and apply to the now-live model. Events the live projector
//     applied to the old model between 1 and 2 are not lost; events it
//     applies to the new one meanwhile are harmless, because every model
//     checks and sets the per-stream version with each change.
//
// "Exhausted" is decided against a barrier: commit-safe reads see nothing
// past the oldest write transaction still running anywhere in the cluster,
// so each read loop (fill, catch-up, replay) first takes a barrier and
// stops at an empty read only once every transaction older than the
// barrier has ended: it has then read every event committed before it
// began.
//
// The same loop replays a live model from a position P (Replay), e.g. after
// restoring a backup: already-applied events are skipped by version.
package rebuild

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// Store is the event store as a rebuild reads it.
type Store interface {
	ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error)
	CountAfter(ctx context.Context, position int64, types []events.StreamType) (int64, error)
	// ReadBarrier and PastBarrier tell a store that is exhausted from one
	// whose committed events are hidden behind a write transaction still
	// running (see eventstore.Store.ReadBarrier).
	ReadBarrier(ctx context.Context) (uint64, error)
	PastBarrier(ctx context.Context, barrier uint64) (bool, error)
}

// Sink receives events in commit-safe order, batch by batch.
type Sink interface {
	HandleBatch(ctx context.Context, batch []events.Envelope) error
}

// Target is a fresh model being filled, then swapped in.
type Target interface {
	// Prepare creates the empty target (dropping a leftover of an aborted rebuild).
	Prepare(ctx context.Context) error
	// Fill is where the events go before the swap.
	Fill() Sink
	// Swap makes the target the live model atomically.
	Swap(ctx context.Context) error
	// Live is where the catch-up after the swap goes: the live model.
	Live() Sink
}

// Progress is a snapshot of a running rebuild.
type Progress struct {
	Phase         string    `json:"phase"` // filling, swapping, catching-up, done, failed
	Events        int64     `json:"events"`
	Total         int64     `json:"total_estimate"`
	Position      int64     `json:"position"`
	EventsPerSec  float64   `json:"events_per_second"`
	ETASeconds    float64   `json:"eta_seconds"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at,omitzero"`
	Error         string    `json:"error,omitempty"`
	FromPosition  int64     `json:"from_position"`
	SwappedAt     time.Time `json:"swapped_at,omitzero"`
	CaughtUpAfter int64     `json:"caught_up_events"`
}

// Tracker holds the progress of the current or last rebuild; it is safe for
// concurrent use (the admin endpoint reads it while the rebuild writes it).
type Tracker struct {
	mu sync.Mutex
	p  Progress
}

// Get returns the current progress.
func (t *Tracker) Get() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p
}

func (t *Tracker) update(f func(*Progress)) Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.p)
	return t.p
}

// Running reports whether a rebuild is in progress.
func (t *Tracker) Running() bool {
	p := t.Get()
	return p.Phase != "" && p.Phase != "done" && p.Phase != "failed"
}

// Options tune a run.
type Options struct {
	BatchSize int
	// StreamTypes the model consumes (none: all); others are not read into it.
	StreamTypes []events.StreamType
	// Report is called with progress about once a second (may be nil).
	Report func(Progress)
	// Log receives a warning while a drain waits long for an older write
	// transaction to end (may be nil).
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
}

// Run rebuilds target from the whole store and swaps it in.
func Run(ctx context.Context, store Store, target Target, tr *Tracker, opts Options) error {
	opts.defaults()
	start := time.Now()
	tr.update(func(p *Progress) { *p = Progress{Phase: "filling", StartedAt: start} })
	err := run(ctx, store, target, tr, opts)
	tr.update(func(p *Progress) {
		p.FinishedAt = time.Now()
		if err != nil {
			p.Phase, p.Error = "failed", err.Error()
		} else {
			p.Phase = "done"
		}
	})
	if opts.Report != nil {
		opts.Report(tr.Get())
	}
	return err
}

func run(ctx context.Context, store Store, target Target, tr *Tracker, opts Options) error {
	if err := target.Prepare(ctx); err != nil {
		return fmt.Errorf("prepare rebuild target: %w", err)
	}
	total, err := store.CountAfter(ctx, 0, opts.StreamTypes)
	if err != nil {
		return err
	}
	tr.update(func(p *Progress) { p.Total = total })
	// The fill reads every event committed when it started, even those a
	// transaction still open somewhere in the cluster hides for a while:
	// swapping in a model that is behind what the old one shows would make
	// queries go back in time.
	cursor, err := drain(ctx, store, eventstore.Cursor{}, target.Fill(), tr, opts)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	tr.update(func(p *Progress) { p.Phase = "swapping" })
	if err := target.Swap(ctx); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	before := tr.update(func(p *Progress) { p.Phase, p.SwappedAt = "catching-up", time.Now() }).Events
	// The catch-up reads every event committed before the swap: the live
	// projector may have applied some to the replaced model (by any path,
	// not only through the relay's commit-safe reads), and a finished
	// rebuild holds everything committed before its swap.
	if _, err := drain(ctx, store, cursor, target.Live(), tr, opts); err != nil {
		return fmt.Errorf("catch up after swap: %w", err)
	}
	tr.update(func(p *Progress) { p.CaughtUpAfter = p.Events - before })
	return nil
}

// Replay applies every event after position `from` to a live model, for
// "replay this projection from position P". Events the model already has
// are skipped by their version.
func Replay(ctx context.Context, store Store, live Sink, from int64, tr *Tracker, opts Options) error {
	opts.defaults()
	tr.update(func(p *Progress) { *p = Progress{Phase: "replaying", StartedAt: time.Now(), FromPosition: from} })
	total, err := store.CountAfter(ctx, from, opts.StreamTypes)
	if err == nil {
		tr.update(func(p *Progress) { p.Total = total })
		_, err = drain(ctx, store, eventstore.Cursor{}, positionFilter{live, from}, tr, opts)
	}
	tr.update(func(p *Progress) {
		p.FinishedAt = time.Now()
		if err != nil {
			p.Phase, p.Error = "failed", err.Error()
		} else {
			p.Phase = "done"
		}
	})
	return err
}

// positionFilter passes on only events past a position. The commit-safe
// order is not numeric position order, so the whole store is read and
// filtered rather than started at P.
type positionFilter struct {
	next Sink
	from int64
}

func (f positionFilter) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	kept := filter(batch, func(e events.Envelope) bool { return e.Position > f.from })
	if len(kept) == 0 {
		return nil
	}
	return f.next.HandleBatch(ctx, kept)
}

// filter returns the events of batch that keep accepts: batch itself when
// it accepts them all (a rebuild reads millions of events, mostly all
// wanted, and copying every batch showed in its profile), else a copy.
func filter(batch []events.Envelope, keep func(events.Envelope) bool) []events.Envelope {
	first := slices.IndexFunc(batch, func(e events.Envelope) bool { return !keep(e) })
	if first < 0 {
		return batch
	}
	kept := slices.Clone(batch[:first])
	for _, e := range batch[first+1:] {
		if keep(e) {
			kept = append(kept, e)
		}
	}
	return kept
}

// barrierPoll is how often drain looks again while committed events may be
// hidden behind an older transaction.
const barrierPoll = 20 * time.Millisecond

// drain reads from cursor and feeds sink until it has read every event
// committed before it started: until a read comes back empty once the
// store is past the barrier taken at the start (an empty read before that
// may only mean that a transaction still running hides committed events).
func drain(ctx context.Context, store Store, cursor eventstore.Cursor, sink Sink, tr *Tracker, opts Options) (eventstore.Cursor, error) {
	barrier, err := store.ReadBarrier(ctx)
	if err != nil {
		return cursor, err
	}
	passed := false
	wanted := map[events.StreamType]bool{}
	for _, t := range opts.StreamTypes {
		wanted[t] = true
	}
	lastReport, waitingSince := time.Now(), time.Now()
	for {
		batch, next, err := store.ReadAll(ctx, cursor, opts.BatchSize)
		if err != nil {
			return cursor, err
		}
		if len(batch) == 0 {
			if passed {
				return cursor, nil
			}
			if passed, err = store.PastBarrier(ctx, barrier); err != nil {
				return cursor, err
			}
			if passed {
				continue // one more read decides: the horizon only moves forward
			}
			if time.Since(waitingSince) > 10*time.Second && opts.Log != nil {
				opts.Log.Warn("rebuild: waiting for write transactions older than its start to end; commit-safe reads cannot pass them",
					"barrier", barrier, "waiting", time.Since(waitingSince).Round(time.Second).String())
				waitingSince = time.Now()
			}
			select {
			case <-ctx.Done():
				return cursor, ctx.Err()
			case <-time.After(barrierPoll):
			}
			continue
		}
		kept := batch
		if len(wanted) > 0 {
			kept = filter(batch, func(e events.Envelope) bool { return wanted[e.StreamType] })
		}
		if len(kept) > 0 {
			if err := sink.HandleBatch(ctx, kept); err != nil {
				return cursor, err
			}
		}
		cursor = next
		p := tr.update(func(p *Progress) {
			p.Events += int64(len(kept))
			p.Position = batch[len(batch)-1].Position
			elapsed := time.Since(p.StartedAt).Seconds()
			if elapsed > 0 {
				p.EventsPerSec = float64(p.Events) / elapsed
			}
			if p.EventsPerSec > 0 && p.Total > p.Events {
				p.ETASeconds = float64(p.Total-p.Events) / p.EventsPerSec
			} else {
				p.ETASeconds = 0
			}
		})
		if opts.Report != nil && time.Since(lastReport) >= time.Second {
			opts.Report(p)
			lastReport = time.Now()
		}
	}
}

// ProjectionReads is an event store whose ReadAll is ReadAllForProjection:
// a rebuild reads every event of the store, and no read model reads the
// event ids, occurrence times or metadata that the lean read leaves out.
type ProjectionReads struct{ *eventstore.Store }

// ReadAll implements Store.
func (p ProjectionReads) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	return p.Store.ReadAllForProjection(ctx, after, limit)
}
