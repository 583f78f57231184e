// Package pgcopy writes rows in PostgreSQL's binary COPY format and streams
// them with COPY ... FROM STDIN.
//
// pgx's CopyFrom takes every row as []any and finds an encoder for each
// value of each row; for a bulk write of a few known row shapes (a
// projection rebuild) that lookup and the []any allocations cost more CPU
// than the database's own work on the rows. Here the caller appends typed
// fields straight into a buffer, which is sent while the next rows are
// encoded. The caller must append, for every row,
// exactly the columns it names, in order, with the column types the
// methods are documented for: the server rejects anything else with
// "incorrect binary data format" (the format is not self-describing).
//
// See https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
package pgcopy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// header is the signature, the flags field and the header extension length.
var header = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// postgresEpochMicros is 2000-01-01 00:00 UTC in Unix microseconds: where
// timestamptz's microseconds count from.
const postgresEpochMicros = 946_684_800_000_000

// Rows receives the fields of the rows being encoded (see CopyFrom).
type Rows struct {
	buf []byte
}

// Row begins a row of the given number of fields.
func (r *Rows) Row(fields int) { r.buf = binary.BigEndian.AppendUint16(r.buf, uint16(fields)) }

// Null appends a NULL of any column type.
func (r *Rows) Null() { r.buf = binary.BigEndian.AppendUint32(r.buf, math.MaxUint32) }

// UUID appends a uuid.
func (r *Rows) UUID(id [16]byte) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, 16)
	r.buf = append(r.buf, id[:]...)
}

// Int64 appends a bigint.
func (r *Rows) Int64(v int64) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, 8)
	r.buf = binary.BigEndian.AppendUint64(r.buf, uint64(v))
}

// Int32 appends an integer.
func (r *Rows) Int32(v int32) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, 4)
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(v))
}

// Text appends a text (the connection's client encoding is UTF-8 with pgx).
func (r *Rows) Text(s string) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(len(s)))
	r.buf = append(r.buf, s...)
}

// Time appends a timestamptz, to the microsecond (Postgres's precision;
// finer digits are truncated, as pgx does).
func (r *Rows) Time(t time.Time) {
	micros := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - postgresEpochMicros
	r.buf = binary.BigEndian.AppendUint32(r.buf, 8)
	r.buf = binary.BigEndian.AppendUint64(r.buf, uint64(micros))
}

// JSONB appends a jsonb holding the JSON document doc (not checked here:
// the server parses it).
func (r *Rows) JSONB(doc []byte) {
	r.buf = binary.BigEndian.AppendUint32(r.buf, uint32(len(doc)+1))
	r.buf = append(r.buf, 1) // jsonb's binary format version
	r.buf = append(r.buf, doc...)
}

// CopyFrom writes n rows into table in one COPY statement on conn and
// returns the number of rows written. appendRow(rows, i) appends row i:
// Row, then one field per column of columns, in order. Rows are encoded as
// the connection asks for data, so the server parses the first rows while
// the next are encoded. An error from appendRow aborts the COPY (nothing
// is written) and is returned.
func CopyFrom(ctx context.Context, conn *pgconn.PgConn, table string, columns []string, n int, appendRow func(rows *Rows, i int) error) (int64, error) {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", pgx.Identifier{table}.Sanitize(), strings.Join(quoted, ", "))
	src := &source{n: n, appendRow: appendRow}
	src.rows.buf = append(src.rows.buf, header...)
	tag, err := conn.CopyFrom(ctx, src, sql)
	if failed := src.err.Load(); failed != nil { // the server only saw "COPY from stdin failed"
		return 0, fmt.Errorf("copy into %s: %w", table, *failed)
	}
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", table, err)
	}
	return tag.RowsAffected(), nil
}

// chunkSize is about how many encoded bytes source keeps ahead: pgconn
// sends at most 64 KiB per message.
const chunkSize = 60 << 10

// source is the COPY data as an io.Reader that encodes rows on demand.
type source struct {
	rows      Rows
	off       int // bytes of rows.buf already read
	next, n   int // the next row to encode, and the row count
	done      bool
	appendRow func(*Rows, int) error
	// appendRow's error. Read runs on pgconn's goroutine, which CopyFrom
	// does not always wait for when the connection breaks.
	err atomic.Pointer[error]
}

func (s *source) Read(p []byte) (int, error) {
	if s.off == len(s.rows.buf) {
		if s.done {
			return 0, io.EOF
		}
		if s.off > 0 {
			s.rows.buf, s.off = s.rows.buf[:0], 0
		}
		for s.next < s.n && len(s.rows.buf) < chunkSize {
			if err := s.appendRow(&s.rows, s.next); err != nil {
				s.err.Store(&err)
				return 0, fmt.Errorf("row %d: %w", s.next, err)
			}
			s.next++
		}
		if s.next == s.n {
			s.rows.buf = binary.BigEndian.AppendUint16(s.rows.buf, math.MaxUint16) // the trailer: -1 fields
			s.done = true
		}
	}
	k := copy(p, s.rows.buf[s.off:])
	s.off += k
	return k, nil
}
