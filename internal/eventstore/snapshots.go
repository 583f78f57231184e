package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/pkg/events"
)

// Snapshot is an aggregate's state at Version, serialised as JSON in the
// shape SchemaVersion describes.
type Snapshot struct {
	StreamID        uuid.UUID
	StreamType      events.StreamType
	Version         int64
	SchemaVersion   int
	State           json.RawMessage
	EventRecordedAt time.Time
}

// SaveSnapshot stores s; saving the same stream and version twice keeps the newer state.
func (s *Store) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (stream_id, stream_type, version, schema_version, state, event_recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (stream_id, version) DO UPDATE SET schema_version = excluded.schema_version,
			state = excluded.state, event_recorded_at = excluded.event_recorded_at, created_at = now()`,
		snap.StreamID, string(snap.StreamType), snap.Version, snap.SchemaVersion, []byte(snap.State), snap.EventRecordedAt)
	if err != nil {
		return fmt.Errorf("save snapshot %s@%d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}

// LatestSnapshot returns the newest snapshot of a stream at or below
// maxVersion and recorded at or before until (zero: no bound). ok is false
// when there is none.
func (s *Store) LatestSnapshot(ctx context.Context, streamID uuid.UUID, maxVersion int64, until time.Time) (snap Snapshot, ok bool, err error) {
	if until.IsZero() {
		until = farFuture
	}
	var streamType string
	err = s.pool.QueryRow(ctx, `SELECT stream_id, stream_type, version, schema_version, state, event_recorded_at
		FROM snapshots WHERE stream_id = $1 AND version <= $2 AND event_recorded_at <= $3
		ORDER BY version DESC LIMIT 1`, streamID, maxVersion, until).
		Scan(&snap.StreamID, &streamType, &snap.Version, &snap.SchemaVersion, &snap.State, &snap.EventRecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("latest snapshot %s: %w", streamID, err)
	}
	snap.StreamType = events.StreamType(streamType)
	return snap, true, nil
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// StreamRange selects events of one stream: After < version <= Until (Until
// 0: no bound) and recorded_at <= At (zero: no bound).
type StreamRange struct {
	After int64
	Until int64
	At    time.Time
}

// ScanStream calls fn for each event of the stream in range, in version
// order. It is the replay path (aggregate loading), built for streams of
// millions of events: rows are streamed rather than collected, only the
// columns a fold needs are read, and payloads are decoded on several
// goroutines while fn still sees the events strictly in order. The envelopes
// it yields therefore carry no EventID, Metadata or OccurredAt.
func (s *Store) ScanStream(ctx context.Context, streamID uuid.UUID, rng StreamRange, fn func(events.Envelope) error) error {
	until, at := rng.Until, rng.At
	if until <= 0 {
		until = 1<<63 - 1
	}
	if at.IsZero() {
		at = farFuture
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT stream_type, version, position, type, schema_version, data, recorded_at FROM events
		WHERE stream_id = $1 AND version > $2 AND version <= $3 AND recorded_at <= $4 ORDER BY version`,
		streamID, rng.After, until, at)
	if err != nil {
		return fmt.Errorf("scan stream %s: %w", streamID, err)
	}
	chunks := make(chan *replayChunk, 2*decodeWorkers)
	work := make(chan *replayChunk, 2*decodeWorkers)
	var wg sync.WaitGroup
	for range decodeWorkers {
		wg.Go(func() {
			for c := range work {
				c.decode(s)
			}
		})
	}
	scanErr := make(chan error, 1)
	go func() {
		defer rows.Close()
		defer close(chunks)
		defer close(work)
		c := &replayChunk{done: make(chan struct{})}
		flush := func() bool {
			select {
			case chunks <- c:
			case <-ctx.Done():
				return false
			}
			work <- c
			c = &replayChunk{done: make(chan struct{})}
			return true
		}
		for rows.Next() {
			r := rawEvent{streamID: streamID}
			if err := rows.Scan(&r.streamType, &r.version, &r.position, &r.typ, &r.schemaVersion, &r.data, &r.recordedAt); err != nil {
				scanErr <- err
				return
			}
			c.rows = append(c.rows, r)
			if len(c.rows) == replayChunkSize && !flush() {
				scanErr <- ctx.Err()
				return
			}
		}
		if len(c.rows) > 0 && !flush() {
			scanErr <- ctx.Err()
			return
		}
		scanErr <- rows.Err()
	}()
	var applyErr error
	for c := range chunks {
		<-c.done
		if applyErr != nil {
			continue // drain so the scanner and workers finish
		}
		if c.err != nil {
			applyErr = fmt.Errorf("scan stream %s: %w", streamID, c.err)
			cancel()
			continue
		}
		for _, e := range c.out {
			if err := fn(e); err != nil {
				applyErr = err
				cancel()
				break
			}
		}
	}
	wg.Wait()
	if err := <-scanErr; err != nil && applyErr == nil {
		return fmt.Errorf("scan stream %s: %w", streamID, err)
	}
	return applyErr
}

// decodeWorkers decode replay payloads in parallel: JSON decoding, not the
// database, is the cost of replaying a long stream.
var decodeWorkers = max(2, runtime.GOMAXPROCS(0))

const replayChunkSize = 512

type replayChunk struct {
	rows []rawEvent
	out  []events.Envelope
	err  error
	done chan struct{}
}

func (c *replayChunk) decode(s *Store) {
	defer close(c.done)
	c.out = make([]events.Envelope, len(c.rows))
	for i, r := range c.rows {
		e, err := s.decode(r)
		if err != nil {
			c.err = err
			return
		}
		c.out[i] = e
	}
}
