// Package aggregate loads event-sourced aggregates: newest usable snapshot
// plus the events after it. The same code answers "now" for the command API
// and "as of" for the query API.
package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// Kind describes one aggregate type to the repository.
type Kind[S any] struct {
	StreamType events.StreamType
	Evolve     func(S, events.Envelope) S
	ID         func(S) uuid.UUID
	Version    func(S) int64
	// SnapshotSchema is the version of S's JSON shape. Bump it whenever S
	// changes incompatibly: older snapshots are then ignored, not trusted.
	SnapshotSchema int
}

// Accounts is the Account aggregate kind.
var Accounts = Kind[account.State]{
	StreamType: events.StreamAccount, Evolve: account.Evolve, ID: func(s account.State) uuid.UUID { return s.ID },
	Version: func(s account.State) int64 { return s.Version }, SnapshotSchema: 1,
}

// Orders is the Order aggregate kind.
var Orders = Kind[order.State]{
	StreamType: events.StreamOrder, Evolve: order.Evolve, ID: func(s order.State) uuid.UUID { return s.ID },
	Version: func(s order.State) int64 { return s.Version }, SnapshotSchema: 1,
}

// Store is what the repository needs from the event store.
type Store interface {
	ScanStream(ctx context.Context, streamID uuid.UUID, rng eventstore.StreamRange, fn func(events.Envelope) error) error
	LatestSnapshot(ctx context.Context, streamID uuid.UUID, maxVersion int64, until time.Time) (eventstore.Snapshot, bool, error)
	SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error
}

// Metrics counts snapshot use; share one across repositories.
type Metrics struct {
	snapshotHits      *prometheus.CounterVec
	snapshotsRejected *prometheus.CounterVec
	snapshotsWritten  *prometheus.CounterVec
}

// NewMetrics registers the snapshot metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		snapshotHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregate_snapshot_loads_total", Help: "Aggregate loads that started from a snapshot."}, []string{"stream_type"}),
		snapshotsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregate_snapshots_rejected_total", Help: "Snapshots ignored because they could not be decoded or had an old schema (the load replayed instead)."}, []string{"stream_type"}),
		snapshotsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aggregate_snapshots_written_total", Help: "Snapshots written."}, []string{"stream_type"}),
	}
	reg.MustRegister(m.snapshotHits, m.snapshotsRejected, m.snapshotsWritten)
	return m
}

// Repository loads and snapshots aggregates of one kind.
type Repository[S any] struct {
	store   Store
	kind    Kind[S]
	every   int64 // 0: never snapshot
	log     *slog.Logger
	metrics *Metrics
}

// NewRepository returns a repository that writes a snapshot every
// snapshotEvery events (0 disables writing; reading still uses snapshots).
func NewRepository[S any](store Store, kind Kind[S], snapshotEvery int64, log *slog.Logger, metrics *Metrics) *Repository[S] {
	if metrics == nil {
		metrics = NewMetrics(prometheus.NewRegistry())
	}
	return &Repository[S]{store: store, kind: kind, every: snapshotEvery, log: log, metrics: metrics}
}

// Load returns the current state of a stream (the zero S when it has no events).
func (r *Repository[S]) Load(ctx context.Context, id uuid.UUID) (S, error) {
	return r.LoadAt(ctx, id, 0, time.Time{})
}

// LoadAt returns the state as it was at version untilVersion (0: latest) and
// instant at (zero: now), from the newest snapshot at or before that point.
func (r *Repository[S]) LoadAt(ctx context.Context, id uuid.UUID, untilVersion int64, at time.Time) (S, error) {
	var state S
	maxVersion := untilVersion
	if maxVersion <= 0 {
		maxVersion = 1<<63 - 1
	}
	snap, ok, err := r.store.LatestSnapshot(ctx, id, maxVersion, at)
	if err != nil {
		return state, err
	}
	if ok {
		if s, usable := r.decode(snap); usable {
			state = s
			r.metrics.snapshotHits.WithLabelValues(string(r.kind.StreamType)).Inc()
		}
	}
	err = r.store.ScanStream(ctx, id, eventstore.StreamRange{After: r.kind.Version(state), Until: untilVersion, At: at},
		func(e events.Envelope) error {
			state = r.kind.Evolve(state, e)
			return nil
		})
	if err != nil {
		return state, fmt.Errorf("load %s %s: %w", r.kind.StreamType, id, err)
	}
	return state, nil
}

// decode trusts a snapshot only if its schema is the current one and it
// decodes; otherwise the caller replays from the start.
func (r *Repository[S]) decode(snap eventstore.Snapshot) (S, bool) {
	var s S
	reject := func(reason string, err error) (S, bool) {
		r.metrics.snapshotsRejected.WithLabelValues(string(r.kind.StreamType)).Inc()
		if r.log != nil {
			r.log.Warn("snapshot ignored, replaying", "stream_id", snap.StreamID, "version", snap.Version, "reason", reason, "error", err)
		}
		var zero S
		return zero, false
	}
	if snap.SchemaVersion != r.kind.SnapshotSchema {
		return reject(fmt.Sprintf("schema %d, want %d", snap.SchemaVersion, r.kind.SnapshotSchema), nil)
	}
	if err := json.Unmarshal(snap.State, &s); err != nil {
		return reject("undecodable", err)
	}
	if r.kind.Version(s) != snap.Version {
		return reject(fmt.Sprintf("state version %d does not match snapshot version %d", r.kind.Version(s), snap.Version), nil)
	}
	return s, true
}

// AfterAppend writes a snapshot when the append that moved the stream from
// fromVersion to state's version crossed a multiple of the snapshot interval.
// It runs after the append has committed and only logs failures: a missing
// snapshot costs a longer replay, never a wrong answer.
func (r *Repository[S]) AfterAppend(ctx context.Context, state S, fromVersion int64, recordedAt time.Time) {
	to := r.kind.Version(state)
	if r.every <= 0 || to/r.every == fromVersion/r.every {
		return
	}
	if err := r.Save(ctx, state, recordedAt); err != nil && r.log != nil {
		r.log.Warn("snapshot not written", "stream_type", r.kind.StreamType, "version", to, "error", err)
	}
}

// Save writes a snapshot of state.
func (r *Repository[S]) Save(ctx context.Context, state S, recordedAt time.Time) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("marshal snapshot: %w", err)
	}
	err = r.store.SaveSnapshot(ctx, eventstore.Snapshot{
		StreamID: r.kind.ID(state), StreamType: r.kind.StreamType, Version: r.kind.Version(state),
		SchemaVersion: r.kind.SnapshotSchema, State: b, EventRecordedAt: recordedAt,
	})
	if err == nil {
		r.metrics.snapshotsWritten.WithLabelValues(string(r.kind.StreamType)).Inc()
	}
	return err
}
