package eventstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/pkg/events"
)

// ScanStream calls fn for each event of the stream in range, in version
// order. It is the replay path (aggregate loading), built for streams of
// millions of events: rows are streamed rather than collected, only the
// columns a fold needs are read, and payloads are decoded on several
// goroutines while fn still sees the events strictly in order. The envelopes
// it yields therefore carry no EventID, StreamType, Metadata or OccurredAt.
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
	// The row shape is foldRows', but what is the same on every row (the
	// stream) or not needed (the transaction id) is NULL: a NULL costs the
	// server nothing to send, where those columns took a sixth of its time
	// per row of a long replay.
	rows, err := s.pool.Query(ctx, `SELECT NULL::xid8, position, NULL::text, NULL::uuid, version, type, schema_version, data, recorded_at
		FROM events WHERE stream_id = $1 AND version > $2 AND version <= $3 AND recorded_at <= $4 ORDER BY version`,
		postgres.UUID(streamID), rng.After, until, at)
	if err != nil {
		return fmt.Errorf("scan stream %s: %w", streamID, err)
	}
	if _, err := s.foldRows(ctx, cancel, rows, func(e events.Envelope) error {
		e.StreamID = streamID
		return fn(e)
	}); err != nil {
		return fmt.Errorf("scan stream %s: %w", streamID, err)
	}
	return nil
}

// ReadAllForProjection returns the same events as ReadAll, in the same
// order and with the same cursor, without the EventID, OccurredAt and
// Metadata that projections never read. Rebuilds read the whole store
// through it.
func (s *Store) ReadAllForProjection(ctx context.Context, after Cursor, limit int) ([]events.Envelope, Cursor, error) {
	// A rebuild's reads come back full: room for limit envelopes at once
	// spares growing the slice through every size up to it.
	return s.readAll(ctx, leanColumns, after, limit, limit)
}

// The columns foldRows reads: the lean row, and the full one that adds
// what only the relay and the history need.
const (
	leanColumns = `transaction_id, position, stream_type, stream_id, version, type, schema_version, data, recorded_at`
	fullColumns = leanColumns + `, event_id, metadata, occurred_at`
)

// readAll is ReadAll and ReadAllForProjection: columns is leanColumns or
// fullColumns; capacity is the room the result starts with.
func (s *Store) readAll(ctx context.Context, columns string, after Cursor, limit, capacity int) ([]events.Envelope, Cursor, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// ORDER BY names the table's columns: a bare name that an output column
	// also has would resolve to it and forgo the (transaction_id, position)
	// index, sorting everything after the cursor on every call.
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM events
		WHERE (transaction_id, position) > ($1::text::xid8, $2)
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY events.transaction_id, events.position LIMIT $3`, strconv.FormatUint(after.TransactionID, 10), after.Position, limit)
	if err != nil {
		return nil, after, fmt.Errorf("read all after %+v: %w", after, err)
	}
	out := make([]events.Envelope, 0, capacity)
	last, err := s.foldRows(ctx, cancel, rows, func(e events.Envelope) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("read all after %+v: %w", after, err)
	}
	if len(out) == 0 {
		return nil, after, nil
	}
	return out, last, nil
}

// foldRows passes rows of leanColumns or fullColumns to fn in order, while
// a scanner hands chunks of rows to decodeWorkers goroutines. It returns the cursor of the last row passed to fn, closes
// rows, and calls cancel (the query's) when it stops early.
func (s *Store) foldRows(ctx context.Context, cancel context.CancelFunc, rows pgx.Rows, fn func(events.Envelope) error) (Cursor, error) {
	chunks := make(chan *replayChunk, 2*decodeWorkers)
	work := make(chan *replayChunk, 2*decodeWorkers)
	var wg sync.WaitGroup
	for range decodeWorkers {
		wg.Go(func() {
			for c := range work {
				c.decode(s.registry)
			}
		})
	}
	scanErr := make(chan error, 1)
	go func() {
		defer rows.Close()
		defer close(chunks)
		defer close(work)
		var rr *rowReader // from the first row: a failed query has no columns
		c := getReplayChunk()
		flush := func() bool {
			select {
			case chunks <- c:
			case <-ctx.Done():
				return false
			}
			work <- c
			c = getReplayChunk()
			return true
		}
		for rows.Next() {
			if rr == nil {
				rr = newRowReader(rows.FieldDescriptions())
			}
			if err := rr.add(c, rows); err != nil {
				scanErr <- err
				return
			}
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
	var (
		last     Cursor
		applyErr error
		// The schema version of the last event type seen (payloads are
		// decoded into the current version): rows come in runs of a type.
		lastType      string
		schemaVersion int
	)
	for c := range chunks {
		<-c.done
		if applyErr != nil {
			continue // drain so the scanner and workers finish
		}
		if c.err != nil {
			applyErr = c.err
			cancel()
			continue
		}
		for i, r := range c.rows {
			if r.typ != lastType || schemaVersion == 0 {
				lastType, schemaVersion = r.typ, s.registry.CurrentVersion(r.typ)
			}
			e := events.Envelope{EventID: r.eventID, StreamType: events.StreamType(r.streamType), StreamID: r.streamID,
				Version: r.version, Position: r.position, Type: r.typ, SchemaVersion: schemaVersion,
				OccurredAt: r.occurredAt, RecordedAt: r.recordedAt, Data: c.payloads[i]}
			if len(c.metadata) > 0 {
				e.Metadata = c.metadata[i]
			}
			if err := fn(e); err != nil {
				applyErr = err
				cancel()
				break
			}
			last = Cursor{TransactionID: r.txid, Position: r.position}
		}
		putReplayChunk(c)
	}
	wg.Wait()
	if err := <-scanErr; err != nil && applyErr == nil {
		return last, err
	}
	return last, applyErr
}

// decodeWorkers decode replay payloads in parallel: JSON decoding, not the
// database, is the cost of replaying a long stream.
var decodeWorkers = max(2, runtime.GOMAXPROCS(0))

const replayChunkSize = 512

// replayRow is one row read by foldRows. Its payload and metadata point
// into the chunk's arena: a million-event replay then allocates per chunk,
// not per row, which keeps the garbage collector out of the way.
type replayRow struct {
	txid                   uint64
	version, position      int64
	streamType, typ        string
	streamID, eventID      uuid.UUID
	schemaVersion          int
	data, metadata         []byte // metadata: full rows only
	recordedAt, occurredAt time.Time
}

type replayChunk struct {
	rows     []replayRow
	arena    []byte
	payloads []events.Payload
	metadata []events.Metadata // full rows only
	err      error
	done     chan struct{}
}

// replayChunks recycles chunks: a rebuild reads millions of rows, and
// allocating each chunk's rows and arena anew made the garbage collector
// a good part of its CPU time. The envelopes fn receives share nothing
// with a chunk (payloads are decoded into values of their own, strings of
// the row are interned), so a chunk is free again once fn has seen its rows.
var replayChunks = sync.Pool{New: func() any {
	return &replayChunk{rows: make([]replayRow, 0, replayChunkSize), arena: make([]byte, 0, replayChunkSize*64)}
}}

func getReplayChunk() *replayChunk {
	c := replayChunks.Get().(*replayChunk)
	c.done = make(chan struct{})
	return c
}

func putReplayChunk(c *replayChunk) {
	clear(c.payloads) // drop the references to the payloads handed out
	clear(c.metadata)
	c.rows, c.arena, c.payloads, c.metadata = c.rows[:0], c.arena[:0], c.payloads[:0], c.metadata[:0]
	c.err, c.done = nil, nil
	replayChunks.Put(c)
}

// grow returns s with length n, reusing its array when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// rowReader reads the rows of one foldRows query.
type rowReader struct {
	full  bool // fullColumns: event_id, metadata and occurred_at follow
	raw   bool // the columns can be read from their raw bytes
	jsonb [2]bool
	// One interner per column: each then mostly sees the name it saw last.
	streamTypes, eventTypes interner
}

// newRowReader looks at the query's columns once. The numeric, uuid and
// time columns arrive in the binary format pgx asks for with the extended
// protocol; reading their raw values skips a reflective Scan and several
// allocations per row. Text is the same in both formats, and jsonb and
// xid8 are handled in both; any other result (the simple protocol) goes
// through Scan.
func newRowReader(fields []pgconn.FieldDescription) *rowReader {
	rr := &rowReader{full: len(fields) == 12, raw: true}
	binaryCols := []int{1, 3, 4, 6, 8}
	if rr.full {
		binaryCols = append(binaryCols, 9, 11)
		rr.jsonb[1] = binaryJSONB(fields[10])
	}
	rr.jsonb[0] = binaryJSONB(fields[7])
	for _, i := range binaryCols {
		if fields[i].Format != pgx.BinaryFormatCode {
			rr.raw = false
		}
	}
	return rr
}

// binaryJSONB reports whether a column arrives as binary jsonb (a version
// byte, then the text); json's binary format is its text.
func binaryJSONB(f pgconn.FieldDescription) bool {
	return f.Format == pgx.BinaryFormatCode && f.DataTypeOID == pgtype.JSONBOID
}

// add reads the current row into c.
func (rr *rowReader) add(c *replayChunk, rows pgx.Rows) error {
	if !rr.raw {
		return rr.scan(c, rows)
	}
	vals := rows.RawValues()
	txid, err := readXID8(rows.FieldDescriptions()[0].Format, vals[0])
	if err != nil {
		return err
	}
	if len(vals[1]) != 8 || vals[3] != nil && len(vals[3]) != 16 || len(vals[4]) != 8 || len(vals[6]) != 4 || len(vals[8]) != 8 ||
		rr.full && (len(vals[9]) != 16 || len(vals[11]) != 8) {
		return fmt.Errorf("event row: unexpected binary column sizes")
	}
	r := replayRow{
		txid:          txid,
		position:      int64(binary.BigEndian.Uint64(vals[1])),
		streamType:    rr.streamTypes.of(vals[2]), // "" when NULL
		version:       int64(binary.BigEndian.Uint64(vals[4])),
		typ:           rr.eventTypes.of(vals[5]),
		schemaVersion: int(int32(binary.BigEndian.Uint32(vals[6]))),
		recordedAt:    timestamptz(vals[8]),
	}
	if vals[3] != nil {
		r.streamID = uuid.UUID(vals[3])
	}
	if r.data, err = c.keepJSON(vals[7], rr.jsonb[0]); err != nil {
		return err
	}
	if rr.full {
		r.eventID, r.occurredAt = uuid.UUID(vals[9]), timestamptz(vals[11])
		if r.metadata, err = c.keepJSON(vals[10], rr.jsonb[1]); err != nil {
			return err
		}
	}
	c.rows = append(c.rows, r)
	return nil
}

// scan reads the current row through pgx's Scan.
func (rr *rowReader) scan(c *replayChunk, rows pgx.Rows) error {
	var (
		r                replayRow
		txid, streamType pgtype.Text // NULL in ScanStream's rows
		streamID         pgtype.UUID
	)
	dest := []any{&txid, &r.position, &streamType, &streamID, &r.version, &r.typ, &r.schemaVersion, &r.data, &r.recordedAt}
	if rr.full {
		dest = append(dest, &r.eventID, &r.metadata, &r.occurredAt)
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	if txid.Valid {
		var err error
		if r.txid, err = strconv.ParseUint(txid.String, 10, 64); err != nil {
			return fmt.Errorf("event row: transaction id %q: %w", txid.String, err)
		}
	}
	r.streamType, r.streamID = streamType.String, streamID.Bytes
	r.recordedAt, r.occurredAt = r.recordedAt.UTC(), r.occurredAt.UTC()
	c.rows = append(c.rows, r)
	return nil
}

// keepJSON copies a json(b) value into the chunk's arena; binary jsonb is a
// version byte, then the JSON text.
func (c *replayChunk) keepJSON(v []byte, binaryJSONB bool) ([]byte, error) {
	if binaryJSONB {
		if len(v) < 1 || v[0] != 1 {
			return nil, fmt.Errorf("event row: unsupported jsonb binary version")
		}
		v = v[1:]
	}
	start := len(c.arena)
	c.arena = append(c.arena, v...)
	return c.arena[start:len(c.arena):len(c.arena)], nil
}

// timestamptz reads a binary timestamptz: microseconds since 2000-01-01 UTC.
func timestamptz(b []byte) time.Time {
	return postgresEpoch.Add(time.Duration(int64(binary.BigEndian.Uint64(b))) * time.Microsecond)
}

var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// readXID8 reads a transaction id. pgx has no codec for xid8 and asks for
// its text form, which is still far cheaper for the server than a cast.
func readXID8(format int16, b []byte) (uint64, error) {
	if b == nil { // NULL
		return 0, nil
	}
	if format == pgx.BinaryFormatCode && len(b) == 8 {
		return binary.BigEndian.Uint64(b), nil
	}
	x, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("event row: transaction id %q: %w", b, err)
	}
	return x, nil
}

func (c *replayChunk) decode(registry *events.Registry) {
	defer close(c.done)
	c.payloads = grow(c.payloads, len(c.rows))
	for i, r := range c.rows {
		p, err := registry.Decode(r.typ, r.schemaVersion, r.data)
		if err != nil {
			c.err = fmt.Errorf("event %d (v%d): %w", r.position, r.version, err)
			return
		}
		c.payloads[i] = p
		if r.metadata == nil {
			continue
		}
		if len(c.metadata) == 0 {
			c.metadata = grow(c.metadata, len(c.rows))
		}
		if len(r.metadata) <= 2 { // "{}": nothing to decode
			continue
		}
		if err := json.Unmarshal(r.metadata, &c.metadata[i]); err != nil {
			c.err = fmt.Errorf("event %d metadata: %w", r.position, err)
			return
		}
	}
}

// interner returns one shared string per distinct event type or stream
// type name: a stream has a handful of them and millions of rows, mostly
// in runs of the same name, which a comparison with the last one finds
// without hashing.
type interner struct {
	last  string
	names map[string]string
}

func (in *interner) of(b []byte) string {
	if string(b) == in.last {
		return in.last
	}
	s, ok := in.names[string(b)]
	if !ok {
		if in.names == nil {
			in.names = map[string]string{}
		}
		s = string(b)
		in.names[s] = s
	}
	in.last = s
	return s
}
