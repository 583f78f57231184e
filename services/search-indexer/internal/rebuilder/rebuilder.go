// Package rebuilder runs the search index's rebuilds and replays from the
// event store: `search-indexer rebuild`, `search-indexer replay
// --from-position P`, and the same two behind the projector's admin
// endpoint (rebuild.Admin).
package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// Store is the event store as rebuilds and replays read it: in commit-safe
// order, and per stream to heal gaps.
type Store interface {
	rebuild.Store
	consumer.StreamReader
}

// Options tune a Rebuilder; zero values take defaults.
type Options struct {
	// BatchSize is how many events are read from the store at a time (default 5000).
	BatchSize int
	// MaxCached bounds the order states the fill keeps in memory (default 100,000).
	MaxCached int
	// DeleteGrace is how long the old index outlives the swap (default 2s).
	DeleteGrace time.Duration
	// RetryFor is how long a write to the live index is retried while it
	// fails transiently (Elasticsearch overloaded, a document deleted by hand
	// whose tombstone still refuses writes); default 2 minutes.
	RetryFor time.Duration
	// NoRetry turns those retries off: the first failure ends the run.
	NoRetry bool
	// Report receives progress about once a second (may be nil).
	Report func(rebuild.Progress)
}

// Rebuilder rebuilds and replays the index behind one alias.
type Rebuilder struct {
	es    *elastic.Client
	store Store
	names searchmodel.Names
	log   *slog.Logger
	opts  Options
}

// New returns a Rebuilder of the index names.Alias points at.
func New(es *elastic.Client, store Store, names searchmodel.Names, log *slog.Logger, opts Options) *Rebuilder {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 2 * time.Minute
	}
	if opts.NoRetry {
		opts.RetryFor = 0
	}
	return &Rebuilder{es: es, store: store, names: names, log: log, opts: opts}
}

func (r *Rebuilder) runOptions() rebuild.Options {
	// The indexer consumes only order events; the rest of the store is
	// read but not handed to the index.
	return rebuild.Options{BatchSize: r.opts.BatchSize, StreamTypes: []events.StreamType{events.StreamOrder}, Report: r.opts.Report, Log: r.log}
}

// Rebuild fills a new index from the whole store, swaps it in behind the
// alias and catches up; it has the signature rebuild.NewAdmin wants. On
// failure before the swap, the half-filled index is deleted.
func (r *Rebuilder) Rebuild(ctx context.Context, tr *rebuild.Tracker) error {
	if err := searchmodel.EnsureIndices(ctx, r.es, r.names); err != nil {
		return fmt.Errorf("prepare indices: %w", err)
	}
	var topts []searchmodel.TargetOption
	topts = append(topts, searchmodel.WithTargetLogger(r.log))
	if r.opts.MaxCached > 0 {
		topts = append(topts, searchmodel.WithMaxCached(r.opts.MaxCached))
	}
	if r.opts.DeleteGrace > 0 {
		topts = append(topts, searchmodel.WithDeleteGrace(r.opts.DeleteGrace))
	}
	target := searchmodel.NewRebuildTarget(r.es, r.names, r.live(), topts...)
	err := rebuild.Run(ctx, r.store, target, tr, r.runOptions())
	target.Wait() // the old index's deletion, after the swap
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := target.Discard(dctx); derr != nil {
			r.log.Warn("discard half-filled index", "index", target.Index(), "error", derr)
		}
		return err
	}
	p, st := tr.Get(), target.Stats()
	r.log.Info("rebuild done", "index", target.Index(), "old", target.OldIndices(), "documents", st.Documents,
		"fill_events", st.Events, "fill_writes", st.Writes, "fill_lookups", st.Lookups, "caught_up_events", p.CaughtUpAfter,
		"events_per_second", p.EventsPerSec)
	return nil
}

// Replay applies every order event after position from to the live index;
// what the index already has is skipped by version, and an order that has no
// document is rebuilt from its whole stream (the Sequencer heals the gap).
func (r *Rebuilder) Replay(ctx context.Context, from int64, tr *rebuild.Tracker) error {
	if err := searchmodel.EnsureIndices(ctx, r.es, r.names); err != nil {
		return fmt.Errorf("prepare indices: %w", err)
	}
	err := rebuild.Replay(ctx, r.store, r.live(), from, tr, r.runOptions())
	if r.opts.Report != nil {
		r.opts.Report(tr.Get()) // Replay, unlike Run, leaves the last line to the caller
	}
	return err
}

// live is the live model behind the alias, fed through a Sequencer as the
// projector feeds it, with transient failures retried.
func (r *Rebuilder) live() rebuild.Sink {
	model := searchmodel.New(r.es, r.names.Alias, r.names.CheckpointIndex)
	// A registry of its own: the process's one already has the consumer's
	// metrics of this group, and registering twice panics.
	seq := consumer.NewSequencer(model, r.store, consumer.NewMetrics(prometheus.NewRegistry(), "search-indexer-rebuild"))
	return &retrying{next: seq, retryFor: r.opts.RetryFor, log: r.log}
}

// retrying retries a batch while it fails transiently, for up to retryFor,
// as the consumer would; the rebuild driver itself gives up at the first
// error.
type retrying struct {
	next interface {
		rebuild.Sink
		Transient(error) bool
	}
	retryFor time.Duration
	log      *slog.Logger
}

func (s *retrying) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	deadline := time.Now().Add(s.retryFor)
	backoff := 200 * time.Millisecond
	for {
		err := s.next.HandleBatch(ctx, batch)
		// ErrStale: the alias moved between reading versions and writing
		// (a concurrent swap); the next attempt reads them again.
		retry := err != nil && (s.next.Transient(err) || errors.Is(err, searchmodel.ErrStale))
		if !retry || time.Now().Add(backoff).After(deadline) {
			return err
		}
		s.log.Warn("live index write failed, retrying", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Command is what the search-indexer binary was asked to do: Name is one
// of rebuild.CommandServe, CommandRebuild and CommandReplay.
type Command struct {
	Name         string
	FromPosition int64 // replay only
}

// Usage describes the commands.
const Usage = `usage:
  search-indexer [serve]                       consume order events into the index (default)
  search-indexer rebuild                       rebuild the index from the event store and swap it in
  search-indexer replay --from-position P      re-apply the order events after position P to the live index`

// ParseCommand parses the arguments after the program name with the
// projectors' shared parser (internal/rebuild).
func ParseCommand(args []string) (Command, error) {
	name, err := rebuild.SubcommandOf(args, Usage)
	if err != nil {
		return Command{}, err
	}
	if name == rebuild.CommandServe {
		if len(args) > 1 {
			return Command{}, fmt.Errorf("serve: unexpected arguments %q\n%s", args[1:], Usage)
		}
		return Command{Name: name}, nil
	}
	name, from, err := rebuild.ParseCommand("search-indexer", Usage, args, io.Discard)
	if err != nil {
		return Command{}, err
	}
	return Command{Name: name, FromPosition: max(from, 0)}, nil
}

// Execute runs a rebuild or replay command to its end.
func (r *Rebuilder) Execute(ctx context.Context, cmd Command, out io.Writer) error {
	var tr rebuild.Tracker
	switch cmd.Name {
	case rebuild.CommandRebuild:
		if err := r.Rebuild(ctx, &tr); err != nil {
			return err
		}
		p := tr.Get()
		took := p.FinishedAt.Sub(p.StartedAt)
		fmt.Fprintf(out, "rebuilt the order index from %d events in %s (%.0f events/s), %d applied after the swap\n",
			p.Events, took.Round(time.Millisecond), float64(p.Events)/took.Seconds(), p.CaughtUpAfter)
		return nil
	case rebuild.CommandReplay:
		return r.Replay(ctx, cmd.FromPosition, &tr)
	default:
		return fmt.Errorf("%q is not a one-shot command", cmd.Name)
	}
}

// LogProgress logs progress at most once per interval, and the end, for a
// rebuild running inside the projector process.
func LogProgress(log *slog.Logger, every time.Duration) func(rebuild.Progress) {
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(p rebuild.Progress) {
		mu.Lock()
		defer mu.Unlock()
		final := p.Phase == "done" || p.Phase == "failed"
		if !final && time.Since(last) < every {
			return
		}
		last = time.Now()
		log.Info("rebuild progress", "phase", p.Phase, "events", p.Events, "total_estimate", p.Total,
			"position", p.Position, "events_per_second", p.EventsPerSec, "eta_seconds", p.ETASeconds)
	}
}
