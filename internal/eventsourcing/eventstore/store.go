// Package eventstore is the append-only event store on PostgreSQL.
//
// Append writes a batch of events to one stream in one transaction, guarded
// by UNIQUE (stream_id, version): a writer that lost the race gets
// ErrVersionConflict, never a duplicate or an overwrite.
//
// ReadAll tails the whole store in commit-safe order. Positions come from an
// identity column, so they are unique but a transaction holding a lower
// position can commit after one holding a higher position. A reader following
// positions alone would skip that late event forever. Every row therefore also
// records the id of the transaction that wrote it, and ReadAll (1) orders by
// (transaction_id, position) and (2) returns only rows written by transactions
// older than the oldest one still in flight. Every transaction below that
// horizon has ended, so no row can ever appear behind a reader's cursor.
package eventstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/pkg/events"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the event store's migrations.
func Migrate(databaseURL string) error {
	return postgres.Migrate(databaseURL, migrations, "migrations", "schema_migrations_eventstore")
}

var (
	// ErrVersionConflict means the stream was not at the expected version:
	// another writer appended first (or the stream already exists).
	ErrVersionConflict = errors.New("stream version conflict")
	// ErrDuplicateEvent means an event id was already stored.
	ErrDuplicateEvent = errors.New("duplicate event id")
)

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	registry *events.Registry
	onAppend func()
	appended prometheus.Counter
	latency  prometheus.Histogram
	conflict prometheus.Counter

	group     appendGroup
	groupSize prometheus.Histogram
}

// Option configures a Store.
type Option func(*Store)

// WithRegistry decodes payloads with r instead of events.Default.
func WithRegistry(r *events.Registry) Option { return func(s *Store) { s.registry = r } }

// WithAppendHook calls f after every committed append; the command API uses
// it to wake the outbox relay without a NOTIFY inside the append transaction.
func WithAppendHook(f func()) Option { return func(s *Store) { s.onAppend = f } }

// WithGroupWriters lets n groups of appends be written at once (default 1).
// One gives the largest groups and the least work per append; more overlap
// the groups' commits, for more throughput at low concurrency (group.go).
func WithGroupWriters(n int) Option { return func(s *Store) { s.group.maxWriters = max(1, n) } }

// WithMetrics registers the store's metrics on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Store) { reg.MustRegister(s.appended, s.latency, s.conflict, s.groupSize) }
}

// New returns a store over pool.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, registry: events.Default, onAppend: func() {}, group: appendGroup{maxWriters: 1},
		appended: prometheus.NewCounter(prometheus.CounterOpts{Name: "eventstore_appended_events_total", Help: "Events appended."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eventstore_append_duration_seconds", Help: "Append latency, from the call to the commit (with the wait for a group being written).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
		conflict: prometheus.NewCounter(prometheus.CounterOpts{Name: "eventstore_version_conflicts_total", Help: "Appends rejected by the version guard."}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eventstore_append_group_size", Help: "Appends written together in one statement (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool is the store's connection pool, for components (idempotency, relay
// checkpoints) that must write in the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// NewEvent is one event to append.
type NewEvent struct {
	EventID    uuid.UUID // zero: a new UUIDv7 is generated
	Data       events.Payload
	Metadata   events.Metadata
	OccurredAt time.Time // zero: now
}

// AppendRequest appends Events to one stream whose current version must be
// ExpectedVersion (0: the stream must not exist yet).
type AppendRequest struct {
	StreamType      events.StreamType
	StreamID        uuid.UUID
	ExpectedVersion int64
	Events          []NewEvent
	// InTx, when set, runs inside the append transaction after the events
	// are inserted; an error rolls the append back. The idempotency store
	// uses it to record the response atomically with the events.
	InTx func(ctx context.Context, tx pgx.Tx, appended []events.Envelope) error
}

// insertEvents appends the events of one or more append requests in a
// single statement, so that a lone append is one round trip and atomic
// without an explicit transaction, and a group of them (group.go) shares one
// commit. Each row carries its stream, version and the expected version of
// its request. The WHERE clause is the gap half of the version guard: a
// request whose stream is not at its expected version inserts nothing.
// UNIQUE (stream_id, version) is the other half; it fails the statement.
const insertEvents = `
INSERT INTO events (event_id, stream_type, stream_id, version, type, schema_version, data, metadata, occurred_at)
SELECT e.event_id, e.stream_type, e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.occurred_at
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::bigint[], $6::text[], $7::int[], $8::json[], $9::json[], $10::timestamptz[])
     WITH ORDINALITY AS e(event_id, stream_type, stream_id, version, expected, type, schema_version, data, metadata, occurred_at, ord)
WHERE e.expected = 0 OR EXISTS (SELECT 1 FROM events x WHERE x.stream_id = e.stream_id AND x.version = e.expected)
ORDER BY e.ord
RETURNING event_id, position, recorded_at`

// Append writes req.Events as versions ExpectedVersion+1... of the stream
// atomically and returns them as stored (with positions).
//
// The guard has two halves: UNIQUE (stream_id, version) rejects a version
// that already exists (expected version too low, or a concurrent writer won),
// and the EXISTS clause rejects a gap (expected version too high). Because a
// writer must see version n committed before it can insert n+1, the writing
// transaction of n+1 always starts after that of n: per-stream order and the
// store's commit-safe read order agree.
//
// Appends without InTx that arrive while another is being written are
// committed together, in one statement (group.go).
func (s *Store) Append(ctx context.Context, req AppendRequest) ([]events.Envelope, error) {
	if len(req.Events) == 0 {
		return nil, errors.New("append: no events")
	}
	if !req.StreamType.Valid() {
		return nil, fmt.Errorf("append: unknown stream type %q", req.StreamType)
	}
	start := time.Now()
	p, err := s.prepare(req, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	if req.InTx == nil {
		// Once queued, an append is written whatever becomes of its caller
		// (group.go), so a caller that has already gone writes nothing.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("append to %s %s: %w", req.StreamType, req.StreamID, err)
		}
		s.group.submit(ctx, s, p)
		err = p.err
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := s.insert(ctx, tx, []*pendingAppend{p}); err != nil {
				return err
			}
			if p.err != nil {
				return p.err
			}
			return req.InTx(ctx, tx, p.appended)
		})
		if err == nil {
			s.onAppend()
		}
	}
	if err != nil {
		err = classify(fmt.Errorf("append to %s %s at version %d: %w", req.StreamType, req.StreamID, req.ExpectedVersion, err))
		if errors.Is(err, ErrVersionConflict) {
			s.conflict.Inc()
		}
		return nil, err
	}
	s.latency.Observe(time.Since(start).Seconds())
	s.appended.Add(float64(len(p.appended)))
	return p.appended, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pendingAppend is one append request on its way into the store.
type pendingAppend struct {
	appended   []events.Envelope // positions and recorded_at filled in by insert
	data, meta [][]byte          // the payloads and metadata as JSON
	expected   int64
	err        error         // the request's own outcome once done is closed
	done       chan struct{} // closed when err and appended are final
	lead       chan struct{} // closed when this request must write the next group
}

// prepare builds the envelopes (without positions) and their JSON.
func (s *Store) prepare(req AppendRequest, now time.Time) (*pendingAppend, error) {
	n := len(req.Events)
	p := &pendingAppend{appended: make([]events.Envelope, n), data: make([][]byte, n), meta: make([][]byte, n), expected: req.ExpectedVersion}
	for i, ne := range req.Events {
		if ne.EventID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("new event id: %w", err)
			}
			ne.EventID = id
		}
		if ne.OccurredAt.IsZero() {
			ne.OccurredAt = now
		}
		typ := ne.Data.EventType()
		sv := s.registry.CurrentVersion(typ)
		if sv == 0 {
			return nil, fmt.Errorf("append %s: %w", typ, events.ErrUnknownEventType)
		}
		var err error
		if p.data[i], err = json.Marshal(ne.Data); err != nil {
			return nil, fmt.Errorf("marshal %s: %w", typ, err)
		}
		if p.meta[i], err = json.Marshal(ne.Metadata); err != nil {
			return nil, fmt.Errorf("marshal metadata: %w", err)
		}
		p.appended[i] = events.Envelope{
			EventID: ne.EventID, StreamType: req.StreamType, StreamID: req.StreamID, Version: req.ExpectedVersion + int64(i) + 1,
			Type: typ, SchemaVersion: sv, OccurredAt: ne.OccurredAt, Data: ne.Data, Metadata: ne.Metadata,
		}
	}
	return p, nil
}

// insert writes the events of batch in one statement. A statement error
// (a unique violation, a lost connection) is returned and nothing of the
// batch is written; a request whose stream was not at its expected version
// gets ErrVersionConflict in its err, and the others are written.
func (s *Store) insert(ctx context.Context, q querier, batch []*pendingAppend) error {
	n := 0
	for _, p := range batch {
		n += len(p.appended)
		for i := range p.appended {
			p.appended[i].Position = 0 // not written (yet): the guard check below relies on it
		}
	}
	var (
		ids         = make([]pgtype.UUID, 0, n)
		streamTypes = make([]string, 0, n)
		streamIDs   = make([]pgtype.UUID, 0, n)
		versions    = make([]int64, 0, n)
		expected    = make([]int64, 0, n)
		types       = make([]string, 0, n)
		schemas     = make([]int32, 0, n)
		data        = make([][]byte, 0, n)
		meta        = make([][]byte, 0, n)
		occurred    = make([]time.Time, 0, n)
		byID        = make(map[uuid.UUID]*events.Envelope, n)
	)
	for _, p := range batch {
		for i := range p.appended {
			e := &p.appended[i]
			ids, streamTypes, streamIDs = append(ids, postgres.UUID(e.EventID)), append(streamTypes, string(e.StreamType)), append(streamIDs, postgres.UUID(e.StreamID))
			versions, expected = append(versions, e.Version), append(expected, p.expected)
			types, schemas, occurred = append(types, e.Type), append(schemas, int32(e.SchemaVersion)), append(occurred, e.OccurredAt)
			data, meta = append(data, p.data[i]), append(meta, p.meta[i])
			byID[e.EventID] = e
		}
	}
	rows, err := q.Query(ctx, insertEvents, ids, streamTypes, streamIDs, versions, expected, types, schemas, data, meta, occurred)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id         pgtype.UUID
			position   int64
			recordedAt time.Time
		)
		if err := rows.Scan(&id, &position, &recordedAt); err != nil {
			return err
		}
		if e := byID[uuid.UUID(id.Bytes)]; e != nil {
			e.Position, e.RecordedAt = position, recordedAt.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range batch {
		// The guard admits all of a request's rows or none of them.
		if p.appended[0].Position == 0 {
			p.err = pgx.ErrNoRows // the gap guard refused the request
		}
	}
	return nil
}

// classify maps Postgres failures of an append to the store's sentinels.
func classify(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The EXISTS guard found no previous version: the expected version is ahead of the stream.
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key":
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key":
		return fmt.Errorf("%w: %w", ErrDuplicateEvent, err)
	}
	return err
}

// ReadStream returns up to limit events of a stream with version > afterVersion, in version order.
func (s *Store) ReadStream(ctx context.Context, streamID uuid.UUID, afterVersion int64, limit int) ([]events.Envelope, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+fullColumns+` FROM events
		WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3`, postgres.UUID(streamID), afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	var out []events.Envelope
	if _, err := s.foldRows(ctx, cancel, rows, func(e events.Envelope) error {
		out = append(out, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return out, nil
}

// Cursor is a reader's place in the commit-safe order of the whole store.
// The zero Cursor is the beginning.
type Cursor struct {
	TransactionID uint64 `json:"transaction_id"`
	Position      int64  `json:"position"`
}

// ReadAll returns up to limit events after cursor in commit-safe order, and
// the cursor to continue from. An event is returned only once every
// transaction that might precede it has ended, so a reader that resumes from
// the returned cursor never misses an event that committed late.
func (s *Store) ReadAll(ctx context.Context, after Cursor, limit int) ([]events.Envelope, Cursor, error) {
	// Not limit: the relay asks for hundreds and mostly gets a few, and a
	// slice of limit envelopes would be allocated and cleared on every call.
	return s.readAll(ctx, fullColumns, after, limit, min(limit, 64))
}

// HeadPosition is the highest position stored (0 when empty).
func (s *Store) HeadPosition(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("head position: %w", err)
	}
	return head, nil
}

// CountAfter counts the events with a position above position, of the
// given stream types (none: all). It measures a projection's lag.
func (s *Store) CountAfter(ctx context.Context, position int64, types []events.StreamType) (int64, error) {
	var filter []string
	for _, t := range types {
		filter = append(filter, string(t))
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE position > $1 AND ($2::text[] IS NULL OR stream_type = ANY($2))`,
		position, filter).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events after %d: %w", position, err)
	}
	return n, nil
}

// ReadBarrier returns a barrier for ReadAll and ReadAllForProjection. Their
// commit-safe reads see nothing past the oldest write transaction still
// running anywhere in the cluster, so an empty read does not mean that
// every event committed so far has been read; once PastBarrier reports
// true for the barrier, an empty read does: every event committed before
// ReadBarrier was called is then readable.
func (s *Store) ReadBarrier(ctx context.Context) (uint64, error) {
	var next string
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&next); err != nil {
		return 0, fmt.Errorf("read barrier: %w", err)
	}
	x, err := strconv.ParseUint(next, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read barrier %q: %w", next, err)
	}
	return x, nil
}

// PastBarrier reports whether every transaction older than barrier (see
// ReadBarrier) has ended. It only ever turns from false to true.
func (s *Store) PastBarrier(ctx context.Context, barrier uint64) (bool, error) {
	var passed bool
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8`,
		strconv.FormatUint(barrier, 10)).Scan(&passed); err != nil {
		return false, fmt.Errorf("read horizon: %w", err)
	}
	return passed, nil
}

// StreamVersion is the current version of a stream (0 when it does not exist).
func (s *Store) StreamVersion(ctx context.Context, streamID uuid.UUID) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, postgres.UUID(streamID)).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("stream version %s: %w", streamID, err)
	}
	return v, nil
}
