package pgcopy_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres/pgcopy"
	"github.com/escqrs/platform/internal/testsupport/testenv"
)

type row struct {
	ID   pgtype.UUID
	N    int64
	S    string
	At   time.Time
	Doc  []byte // nil: NULL
	Note *string
}

// TestCopyIntoRoundTrip writes rows through a real server and reads them
// back: every field type, edge values, NULLs, and a second COPY from the
// same buffer after Reset.
func TestCopyIntoRoundTrip(t *testing.T) {
	pool := testenv.NewPool(t, testenv.NewDatabase(t))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE "copy target" (id uuid, n bigint, s text, at timestamptz, doc jsonb, note text)`); err != nil {
		t.Fatal(err)
	}
	note := "a note"
	want := []row{
		{ID: pgtype.UUID{Bytes: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Valid: true}, N: math.MaxInt64, S: "plain",
			At: time.Date(2026, 11, 26, 2, 30, 0, 123456000, time.UTC), Doc: []byte(`{"a": [1, "x"]}`), Note: &note},
		{ID: pgtype.UUID{Bytes: [16]byte{0xff}, Valid: true}, N: math.MinInt64, S: "ünïcødé ✓ \"quoted\" \\ \n",
			At: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), Doc: []byte(`[]`)},
		{ID: pgtype.UUID{Valid: true}, N: 0, S: "", At: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: pgtype.UUID{Bytes: [16]byte{9}, Valid: true}, N: -1, S: strings.Repeat("long ", 10000),
			At: time.Date(2000, 1, 1, 0, 0, 0, 1999, time.FixedZone("x", 3600)), Doc: []byte(`{"nested": {"k": null}}`)},
	}
	columns := []string{"id", "n", "s", "at", "doc", "note"}
	appendRow := func(rs []row) func(*pgcopy.Rows, int) error {
		return func(rows *pgcopy.Rows, i int) error {
			r := rs[i]
			rows.Row(len(columns))
			rows.UUID(r.ID.Bytes)
			rows.Int64(r.N)
			rows.Text(r.S)
			rows.Time(r.At)
			if r.Doc == nil {
				rows.Null()
			} else {
				rows.JSONB(r.Doc)
			}
			if r.Note == nil {
				rows.Null()
			} else {
				rows.Text(*r.Note)
			}
			return nil
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()

	for _, part := range [][]row{want[:2], nil, want[2:]} {
		if n, err := pgcopy.CopyFrom(ctx, pg, "copy target", columns, len(part), appendRow(part)); err != nil || n != int64(len(part)) {
			t.Fatalf("copy of %d rows: %d rows, %v", len(part), n, err)
		}
	}

	got, err := pgx.CollectRows(mustQuery(t, conn.Conn(), `SELECT id, n, s, at, doc::text, note FROM "copy target" ORDER BY n DESC`),
		func(r pgx.CollectableRow) (row, error) {
			var x row
			var doc *string
			err := r.Scan(&x.ID, &x.N, &x.S, &x.At, &doc, &x.Note)
			if doc != nil {
				x.Doc = []byte(*doc)
			}
			return x, err
		})
	if err != nil {
		t.Fatal(err)
	}
	order := []int{0, 2, 3, 1} // by n descending
	if len(got) != len(want) {
		t.Fatalf("%d rows read back, want %d", len(got), len(want))
	}
	for i, k := range order {
		w, g := want[k], got[i]
		wantAt := w.At.Truncate(time.Microsecond)
		if g.ID != w.ID || g.N != w.N || g.S != w.S || !g.At.Equal(wantAt) || string(g.Doc) != string(w.Doc) ||
			(g.Note == nil) != (w.Note == nil) || (g.Note != nil && *g.Note != *w.Note) {
			t.Errorf("row %d:\n got %+v\nwant %+v (at %s)", k, g, w, wantAt)
		}
	}
}

// TestCopyFromManyChunks streams more rows than one message holds and
// reads back their count and sum.
func TestCopyFromManyChunks(t *testing.T) {
	pool := testenv.NewPool(t, testenv.NewDatabase(t))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (n bigint, s text)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const rows = 50_000 // about 1.5 MB: some 25 messages
	n, err := pgcopy.CopyFrom(ctx, conn.Conn().PgConn(), "t", []string{"n", "s"}, rows, func(r *pgcopy.Rows, i int) error {
		r.Row(2)
		r.Int64(int64(i))
		r.Text(strings.Repeat("x", i%20))
		return nil
	})
	if err != nil || n != rows {
		t.Fatalf("CopyFrom = %d, %v; want %d rows", n, err, rows)
	}
	var count, sum, chars int64
	if err := conn.QueryRow(ctx, `SELECT count(*), sum(n), sum(length(s)) FROM t`).Scan(&count, &sum, &chars); err != nil {
		t.Fatal(err)
	}
	var wantChars int64
	for i := range rows {
		wantChars += int64(i % 20)
	}
	if count != rows || sum != rows*(rows-1)/2 || chars != wantChars {
		t.Fatalf("read back count %d sum %d chars %d; want %d, %d, %d", count, sum, chars, rows, rows*(rows-1)/2, wantChars)
	}
}

// TestCopyFromErrors: rows that do not match the columns are rejected by
// the server, and an error from appendRow aborts the COPY; both leave the
// table empty and the connection usable, and the error names the table.
func TestCopyFromErrors(t *testing.T) {
	pool := testenv.NewPool(t, testenv.NewDatabase(t))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (n integer)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()

	_, err = pgcopy.CopyFrom(ctx, pg, "t", []string{"n"}, 1, func(r *pgcopy.Rows, _ int) error {
		r.Row(1)
		r.Int64(7) // 8 bytes for a 4-byte integer
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "copy into t") || !strings.Contains(err.Error(), "binary data format") {
		t.Errorf("wrong shape: err = %v, want the server's binary format error wrapped with the table", err)
	}

	errBad := errors.New("bad row")
	_, err = pgcopy.CopyFrom(ctx, pg, "t", []string{"n"}, 100_000, func(r *pgcopy.Rows, i int) error {
		if i == 90_000 { // after several messages were sent
			return errBad
		}
		r.Row(1)
		r.Int32(int32(i))
		return nil
	})
	if !errors.Is(err, errBad) || !strings.Contains(err.Error(), "copy into t") {
		t.Errorf("appendRow failing: err = %v, want errBad wrapped with the table", err)
	}
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&count); err != nil || count != 0 {
		t.Errorf("after the failed COPYs the table has %d rows (%v), want 0", count, err)
	}
}

func mustQuery(t *testing.T, conn *pgx.Conn, sql string) pgx.Rows {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
