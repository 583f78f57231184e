package rebuilder_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
	"github.com/escqrs/platform/services/projector-orders/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-orders/internal/workload"
)

// TestRebuildUnderLiveWritesAndReads rebuilds the model while a live
// projector keeps appending and applying events and readers keep querying
// the live tables by name, as the query API does. The live projector is
// behind when the rebuild starts (it applied only part of the store), so
// the old tables differ from what the rebuild computes. No read may fail
// or miss a row that was there before; afterwards the tables must equal
// the fold of the whole store exactly, with nothing left behind and the
// indexes under their migration names. A second rebuild in a row must work
// too (it finds the names the first one gave back).
func TestRebuildUnderLiveWritesAndReads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	gen := workload.New(7)
	e.copyHistory(t, gen, 4000)
	stored := e.all(t)
	seq := e.sequencer()
	const behind = 1500
	for lo := 0; lo < behind; lo += 250 {
		if err := seq.HandleBatch(ctx, stored[lo:lo+250]); err != nil {
			t.Fatal(err)
		}
	}
	// Streams the live tables have when the rebuild starts: a reader must
	// find each of them at every moment.
	var orderIDs, accountIDs []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, ev := range stored[:behind] {
		if seen[ev.StreamID] {
			continue
		}
		seen[ev.StreamID] = true
		if ev.StreamType == events.StreamOrder {
			orderIDs = append(orderIDs, ev.StreamID)
		} else {
			accountIDs = append(accountIDs, ev.StreamID)
		}
	}

	// The live projector: appends through the store's real append and
	// applies each stored event through a Sequencer over the live tables,
	// right away. That is stricter than production, where the relay
	// publishes only what a commit-safe read returns: here the live side
	// can apply events the rebuild's reads cannot see yet (the horizon
	// holder below makes that happen), and the rebuild must still not lose
	// them.
	var appended atomic.Int64
	stopLive, liveDone := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopLive:
				liveDone <- nil
				return
			default:
			}
			ev := gen.Next()
			envs, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: ev.StreamType, StreamID: ev.StreamID,
				ExpectedVersion: ev.Version - 1, Events: []eventstore.NewEvent{ev.NewEvent()}})
			if err != nil {
				liveDone <- fmt.Errorf("append: %w", err)
				return
			}
			if err := seq.HandleBatch(ctx, envs); err != nil {
				liveDone <- fmt.Errorf("live apply: %w", err)
				return
			}
			appended.Add(1)
		}
	}()

	// Readers, two connections' worth, with the query API's kind of
	// statements (prepared and cached per connection by pgx).
	var reads atomic.Int64
	stopRead := make(chan struct{})
	readDone := make(chan error, 2)
	for r := range 2 {
		go func() {
			rnd := rand.New(rand.NewPCG(uint64(r), 99))
			for {
				select {
				case <-stopRead:
					readDone <- nil
					return
				default:
				}
				if err := readOnce(ctx, e.pool, orderIDs[rnd.IntN(len(orderIDs))], accountIDs[rnd.IntN(len(accountIDs))]); err != nil {
					readDone <- err
					return
				}
				reads.Add(1)
			}
		}()
	}

	// Write transactions elsewhere that last a while (as other services' or
	// other tests' do) keep holding back the commit-safe horizon, so that
	// reads of the store come back empty before they reach its head.
	stopHold, holdDone := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopHold:
				holdDone <- nil
				return
			default:
			}
			err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT pg_current_xact_id(), pg_sleep(0.03)`)
				return err
			})
			if err != nil {
				holdDone <- err
				return
			}
		}
	}()

	time.Sleep(100 * time.Millisecond) // live traffic on the old tables first
	rb := rebuilder.New(e.store, e.pool, quiet(), rebuilder.WithBatchSize(500))
	var tr rebuild.Tracker
	appendedBefore, readsBefore := appended.Load(), reads.Load()
	res, err := rb.Rebuild(ctx, &tr, nil)
	appendedDuring, readsDuring := appended.Load()-appendedBefore, reads.Load()-readsBefore
	time.Sleep(100 * time.Millisecond) // and on the new ones
	close(stopLive)
	if err := <-liveDone; err != nil {
		t.Fatalf("live projector: %v", err)
	}
	close(stopHold)
	if err := <-holdDone; err != nil {
		t.Fatalf("horizon holder: %v", err)
	}
	close(stopRead)
	for range 2 {
		if err := <-readDone; err != nil {
			t.Fatalf("reader: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if appendedDuring == 0 || readsDuring == 0 {
		t.Fatalf("during the rebuild: %d events appended, %d reads; want both > 0", appendedDuring, readsDuring)
	}
	p := tr.Get()
	if p.Phase != "done" || res.Events < 4000 || p.Events != res.Events+p.CaughtUpAfter {
		t.Fatalf("progress %+v, result %+v: want done, ≥ 4000 events filled, filled + caught up = read", p, res)
	}
	t.Logf("rebuild: %d events filled, %d caught up; %d appended and %d reads during it", res.Events, p.CaughtUpAfter, appendedDuring, readsDuring)

	want := e.assertModel(t)
	e.assertSchema(t)
	if res.Orders > int64(len(want.Orders)) || res.Accounts > int64(len(want.Accounts)) || res.Orders == 0 || res.Accounts == 0 {
		t.Fatalf("rebuild wrote %d orders and %d accounts; the store has %d and %d", res.Orders, res.Accounts, len(want.Orders), len(want.Accounts))
	}
	assertCheckpointAtHead(t, e)

	// A second rebuild in a row: the fresh tables' and indexes' names are
	// free again, and the result is the same.
	var tr2 rebuild.Tracker
	res2, err := rb.Rebuild(ctx, &tr2, nil)
	if err != nil {
		t.Fatalf("second rebuild: %v", err)
	}
	if total := int64(len(e.all(t))); res2.Events != total || res2.Position == 0 {
		t.Fatalf("second rebuild filled %d events up to %d, want all %d", res2.Events, res2.Position, total)
	}
	if got := e.assertModel(t); len(got.Activity) != len(want.Activity) {
		t.Fatalf("second rebuild: %d activity rows, want %d", len(got.Activity), len(want.Activity))
	}
	e.assertSchema(t)
	assertCheckpointAtHead(t, e)
}

// readOnce runs the query API's kinds of reads; a row that existed before
// the rebuild must exist at every moment.
func readOnce(ctx context.Context, pool *pgxpool.Pool, orderID, accountID uuid.UUID) error {
	var (
		customer uuid.UUID
		version  int64
		n        int64
	)
	if err := pool.QueryRow(ctx, `SELECT customer_id, version FROM orders_view WHERE order_id = $1`, orderID).Scan(&customer, &version); err != nil {
		return fmt.Errorf("read order %s: %w", orderID, err)
	}
	rows, err := pool.Query(ctx, `SELECT order_id FROM orders_view WHERE customer_id = $1 ORDER BY placed_at DESC, order_id DESC LIMIT 10`, customer)
	if err != nil {
		return fmt.Errorf("list orders of %s: %w", customer, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return fmt.Errorf("list orders of %s: %d rows, %v", customer, len(ids), err)
	}
	if err := pool.QueryRow(ctx, `SELECT version FROM accounts_balance WHERE account_id = $1`, accountID).Scan(&version); err != nil {
		return fmt.Errorf("read account %s: %w", accountID, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM account_activity WHERE account_id = $1`, accountID).Scan(&n); err != nil || n == 0 {
		return fmt.Errorf("read activity of %s: %d rows, %v", accountID, n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders_view`).Scan(&n); err != nil || n == 0 {
		return fmt.Errorf("count orders: %d, %v", n, err)
	}
	return nil
}

func assertCheckpointAtHead(t *testing.T, e *env) {
	t.Helper()
	head, err := e.store.HeadPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, ok, err := ordersmodel.ReadCheckpoint(context.Background(), e.pool)
	if err != nil || !ok || cp.Position != head {
		t.Fatalf("checkpoint %+v (found %v, %v), want position %d (the head)", cp, ok, err, head)
	}
}

// TestRebuildOfEmptyStore swaps in empty tables and moves no checkpoint.
func TestRebuildOfEmptyStore(t *testing.T) {
	e := newEnv(t)
	var tr rebuild.Tracker
	res, err := rebuilder.New(e.store, e.pool, quiet()).Rebuild(context.Background(), &tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 0 || res.Orders != 0 || tr.Get().Phase != "done" {
		t.Fatalf("result %+v, progress %+v", res, tr.Get())
	}
	e.assertModel(t)
	e.assertSchema(t)
}

// TestRebuildsAreExclusive: a second rebuild while one holds the lock fails
// fast instead of dropping the first one's tables.
func TestRebuildsAreExclusive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(3), 500)
	gate := &gatedStore{Store: e.store, open: make(chan struct{}), entered: make(chan struct{}, 1)}
	first := rebuilder.New(gate, e.pool, quiet())
	done := make(chan error, 1)
	go func() {
		var tr rebuild.Tracker
		_, err := first.Rebuild(ctx, &tr, nil)
		done <- err
	}()
	<-gate.entered // the first rebuild has prepared its tables
	var tr rebuild.Tracker
	if _, err := rebuilder.New(e.store, e.pool, quiet()).Rebuild(ctx, &tr, nil); !errors.Is(err, rebuilder.ErrAlreadyRunning) || tr.Get().Phase != "failed" {
		t.Fatalf("second rebuild: %v, progress %+v; want ErrAlreadyRunning, failed", err, tr.Get())
	}
	close(gate.open)
	if err := <-done; err != nil {
		t.Fatalf("first rebuild: %v", err)
	}
	e.assertModel(t)
	e.assertSchema(t)
}

// gatedStore holds a rebuild right after Prepare (rebuild.Run counts the
// events then) until open is closed.
type gatedStore struct {
	rebuilder.Store
	open    chan struct{}
	entered chan struct{}
}

func (g *gatedStore) CountAfter(ctx context.Context, position int64, types []events.StreamType) (int64, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return g.Store.CountAfter(ctx, position, types)
}

// TestFailedRebuildLeavesLiveTables: a rebuild that fails during the fill
// (here: its context ends) leaves the live tables as they were and drops
// its own.
func TestFailedRebuildLeavesLiveTables(t *testing.T) {
	e := newEnv(t)
	e.copyHistory(t, workload.New(5), 800)
	if err := e.sequencer().HandleBatch(context.Background(), e.all(t)); err != nil {
		t.Fatal(err)
	}
	before, err := ordersmodel.Dump(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gate := &gatedStore{Store: e.store, open: make(chan struct{}), entered: make(chan struct{}, 1)}
	go func() { <-gate.entered; cancel() }()
	var tr rebuild.Tracker
	if _, err := rebuilder.New(gate, e.pool, quiet()).Rebuild(ctx, &tr, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("rebuild: %v, want context.Canceled", err)
	}
	if p := tr.Get(); p.Phase != "failed" {
		t.Fatalf("progress %+v, want failed", p)
	}
	after, err := ordersmodel.Dump(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Orders) != len(before.Orders) || len(after.Activity) != len(before.Activity) || len(before.Orders) == 0 {
		t.Fatalf("live tables changed: %d/%d rows before, %d/%d after", len(before.Orders), len(before.Activity), len(after.Orders), len(after.Activity))
	}
	e.assertModel(t)
	e.assertSchema(t)
}

// TestReplayRepairsDeletedRows deletes the rows of some streams from the
// live tables (as a bad manual fix or a partial restore would) and replays
// from a position P.
//
// Why a replay repairs them: Replay hands the Sequencer every event after P.
// For a stream whose rows are gone, the model reports version 0, so the
// first event after P (version k > 1) is a gap; the Sequencer reads
// versions 1..k-1 from the store and applies the whole stream, rewriting
// the balance row and every activity row. Streams that are intact skip the
// events they have by version. A stream with no event after P is never
// handed over, so it stays missing: that is what a replay from 0 (or a
// rebuild) is for.
func TestReplayRepairsDeletedRows(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(11), 3000)
	stored := e.all(t)
	seq := e.sequencer()
	for lo := 0; lo < len(stored); lo += 500 {
		if err := seq.HandleBatch(ctx, stored[lo:min(lo+500, len(stored))]); err != nil {
			t.Fatal(err)
		}
	}
	want := e.assertModel(t)

	p := stored[len(stored)/2].Position
	type span struct {
		first, last int64 // positions
		n           int
		typ         events.StreamType
	}
	spans := map[uuid.UUID]*span{}
	var order []uuid.UUID
	for _, ev := range stored {
		s := spans[ev.StreamID]
		if s == nil {
			s = &span{first: ev.Position, typ: ev.StreamType}
			spans[ev.StreamID] = s
			order = append(order, ev.StreamID)
		}
		s.last, s.n = ev.Position, s.n+1
	}
	var accountA, orderO, accountB uuid.UUID // A and O span P; all of B is at or before P
	for _, id := range order {
		s := spans[id]
		switch {
		case accountA == uuid.Nil && s.typ == events.StreamAccount && s.first <= p && s.last > p && s.n >= 4:
			accountA = id
		case orderO == uuid.Nil && s.typ == events.StreamOrder && s.first <= p && s.last > p && s.n >= 2:
			orderO = id
		case accountB == uuid.Nil && s.typ == events.StreamAccount && s.last <= p && s.n >= 2:
			accountB = id
		}
	}
	if accountA == uuid.Nil || orderO == uuid.Nil || accountB == uuid.Nil {
		t.Fatalf("workload has no suitable streams around position %d", p)
	}
	accounts := []uuid.UUID{accountA, accountB}
	for _, del := range []struct {
		sql string
		arg any
	}{
		{`DELETE FROM accounts_balance WHERE account_id = ANY($1)`, accounts},
		{`DELETE FROM account_activity WHERE account_id = ANY($1)`, accounts},
		{`DELETE FROM orders_view WHERE order_id = $1`, orderO},
	} {
		if ct, err := e.pool.Exec(ctx, del.sql, del.arg); err != nil || ct.RowsAffected() == 0 {
			t.Fatalf("%s: %v, %d rows", del.sql, err, ct.RowsAffected())
		}
	}

	rb := rebuilder.New(e.store, e.pool, quiet(), rebuilder.WithBatchSize(700))
	var tr rebuild.Tracker
	n, err := rb.Replay(ctx, p, &tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := 0
	for _, ev := range stored {
		if ev.Position > p {
			after++
		}
	}
	if pr := tr.Get(); n != int64(after) || pr.Phase != "done" || pr.Total != int64(after) || pr.FromPosition != p {
		t.Fatalf("replay handed over %d events, progress %+v; want %d events after %d, done", n, pr, after, p)
	}
	// A and O are back, B is still missing: everything else equals the fold.
	got, err := ordersmodel.Dump(ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	without := func(rows ordersmodel.Rows, id uuid.UUID) ordersmodel.Rows {
		var out ordersmodel.Rows
		out.Orders = rows.Orders
		for _, a := range rows.Accounts {
			if a.AccountID != id {
				out.Accounts = append(out.Accounts, a)
			}
		}
		for _, a := range rows.Activity {
			if a.AccountID != id {
				out.Activity = append(out.Activity, a)
			}
		}
		return out
	}
	if w := without(want, accountB); !rowsEqual(got, w) {
		t.Fatalf("after replay from %d: %d/%d/%d rows, want %d/%d/%d (all but account B)", p,
			len(got.Orders), len(got.Accounts), len(got.Activity), len(w.Orders), len(w.Accounts), len(w.Activity))
	}

	// From 0 every stream is handed over, B included.
	if _, err := rb.Replay(ctx, 0, &tr, nil); err != nil {
		t.Fatal(err)
	}
	e.assertModel(t)
}

func rowsEqual(a, b ordersmodel.Rows) bool {
	return reflect.DeepEqual(a.Orders, b.Orders) && reflect.DeepEqual(a.Accounts, b.Accounts) && reflect.DeepEqual(a.Activity, b.Activity)
}

// TestReaderMatchesStore: the rebuild's lean reader returns what
// eventstore.Store.ReadAll returns (minus the fields the model never
// reads), batch by batch with the same cursors; like it, it never returns
// an event past a transaction still in flight, and with a barrier it waits
// for such a transaction instead of reporting the end of the store.
func TestReaderMatchesStore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	gen := workload.New(13)
	e.copyHistory(t, gen, 300)
	for _, ev := range gen.Take(40) {
		if _, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: ev.StreamType, StreamID: ev.StreamID,
			ExpectedVersion: ev.Version - 1, Events: []eventstore.NewEvent{ev.NewEvent()}}); err != nil {
			t.Fatal(err)
		}
	}
	// Past every transaction older than these events (other tests' included),
	// so that both readers see all of them from here on.
	if n := len(e.all(t)); n != 340 {
		t.Fatalf("read %d events, want 340", n)
	}
	rd := rebuilder.NewReader(e.store)
	defer rd.Close()
	compare := func(from eventstore.Cursor, limit int) (eventstore.Cursor, int) {
		t.Helper()
		want, wantNext, err := e.store.ReadAll(ctx, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		got, gotNext, err := rd.ReadAll(ctx, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		if gotNext != wantNext || len(got) != len(want) {
			t.Fatalf("after %+v: %d events up to %+v, want %d up to %+v", from, len(got), gotNext, len(want), wantNext)
		}
		for i := range want {
			w := want[i]
			w.EventID, w.OccurredAt, w.Metadata = uuid.Nil, time.Time{}, events.Metadata{}
			if !reflect.DeepEqual(got[i], w) {
				t.Fatalf("event %d after %+v:\n got %+v\nwant %+v", i, from, got[i], w)
			}
		}
		return gotNext, len(got)
	}
	var cursor eventstore.Cursor
	total := 0
	for {
		next, n := compare(cursor, 37)
		if n == 0 {
			break
		}
		cursor, total = next, total+n
	}
	if total != 340 {
		t.Fatalf("read %d events, want 340", total)
	}

	// An append held open inside its transaction, then one that commits:
	// the second has the higher position and is committed, but neither may
	// be read before the first commits.
	var slow, fast workload.Event
	for _, ev := range gen.Take(200) {
		if ev.Version == 1 && slow.StreamID == uuid.Nil {
			slow = ev
		} else if ev.Version == 1 && fast.StreamID == uuid.Nil {
			fast = ev
		}
	}
	inTx, release, slowDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: slow.StreamType, StreamID: slow.StreamID,
			Events: []eventstore.NewEvent{slow.NewEvent()},
			InTx: func(context.Context, pgx.Tx, []events.Envelope) error {
				close(inTx)
				<-release
				return nil
			}})
		slowDone <- err
	}()
	<-inTx
	if _, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: fast.StreamType, StreamID: fast.StreamID,
		Events: []eventstore.NewEvent{fast.NewEvent()}}); err != nil {
		t.Fatal(err)
	}
	if _, n := compare(cursor, 100); n != 0 {
		t.Fatalf("read %d events past a transaction in flight", n)
	}

	// Once the held transaction commits, both are read, in commit order.
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions in the cluster may hold the horizon back a
	// moment longer: read until both have come.
	read := 0
	for deadline := time.Now().Add(10 * time.Second); read < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int
		cursor, n = compare(cursor, 100)
		read += n
	}
	if read != 2 {
		t.Fatalf("after the commit: read %d events, want the held one and the other", read)
	}
}

// TestSwapRetriesBehindLongQuery: a transaction that holds a live table
// longer than the swap's lock timeout makes the swap give up and retry (so
// that the queries queued behind its lock request are released), and the
// rebuild completes once that transaction ends.
func TestSwapRetriesBehindLongQuery(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(23), 600)
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM accounts_balance`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res rebuilder.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		var tr rebuild.Tracker
		res, err := rebuilder.New(e.store, e.pool, quiet()).Rebuild(ctx, &tr, nil)
		done <- result{res, err}
	}()
	// Wait until the swap queues for its lock behind this transaction, then
	// hold the table through several of its attempts.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND mode = 'AccessExclusiveLock' AND relation = 'accounts_balance'::regclass`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the swap never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.SwapAttempts < 2 || r.res.SwapDuration < time.Second {
		t.Fatalf("swap: %d attempts in %s; want several, over the second the table was held", r.res.SwapAttempts, r.res.SwapDuration)
	}
	e.assertModel(t)
	e.assertSchema(t)
}

// TestRebuildKeepsGrants: privileges other roles hold on the live tables
// (a read-only role of the query API) hold on the tables swapped in.
func TestRebuildKeepsGrants(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(29), 300)
	role := "rebuild_reader_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	if _, err := e.pool.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Roles are cluster-wide: drop this one before the database goes.
		if _, err := e.pool.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	if _, err := e.pool.Exec(ctx, `GRANT SELECT ON orders_view, accounts_balance TO `+role+`;
		GRANT SELECT, INSERT ON account_activity TO `+role+` WITH GRANT OPTION; GRANT SELECT ON orders_view TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	acl := func() string {
		t.Helper()
		var s string
		if err := e.pool.QueryRow(ctx, `SELECT string_agg(c.relname || ':' || a.item, ' ' ORDER BY c.relname, a.item)
			FROM pg_class c CROSS JOIN LATERAL unnest(c.relacl::text[]) AS a(item)
			WHERE c.relname IN ('orders_view', 'accounts_balance', 'account_activity')`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := acl()
	if !strings.Contains(before, role+"=r") {
		t.Fatalf("grants not in place: %s", before)
	}
	var tr rebuild.Tracker
	if _, err := rebuilder.New(e.store, e.pool, quiet()).Rebuild(ctx, &tr, nil); err != nil {
		t.Fatal(err)
	}
	if after := acl(); after != before {
		t.Fatalf("privileges after the rebuild:\n%s\nbefore:\n%s", after, before)
	}
}

// TestRebuildRewritesOrdersChangedAfterTheirFinalEvent: the fill writes an
// order's row as soon as the order is final (shipped or cancelled). The
// store does not enforce the domain's rules, so an event may still follow:
// the rebuilt row must be the fold of all of them, and every order must
// have exactly one row.
func TestRebuildRewritesOrdersChangedAfterTheirFinalEvent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(41), 800) // many orders that end normally
	placed := events.OrderPlaced{CustomerID: uuid.New(), Currency: "EUR",
		Items: []events.LineItem{{SKU: "LATE-1", Name: "Late", Quantity: 1, UnitPriceCents: 500}}}
	late := []eventstore.NewEvent{{Data: placed}, {Data: events.OrderCancelled{Reason: "test"}},
		{Data: events.OrderPaid{AmountCents: 500, Method: "card"}}}
	for _, id := range []uuid.UUID{uuid.New(), uuid.New()} {
		if _, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: events.StreamOrder, StreamID: id, Events: late}); err != nil {
			t.Fatal(err)
		}
	}
	var tr rebuild.Tracker
	res, err := rebuilder.New(e.store, e.pool, quiet()).Rebuild(ctx, &tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := e.assertModel(t)
	if res.Orders != int64(len(rows.Orders)) {
		t.Errorf("the result counts %d order rows, the table has %d", res.Orders, len(rows.Orders))
	}
	paidAfterCancel := 0
	for _, r := range rows.Orders {
		if r.Items[0].SKU == "LATE-1" && r.Version == 3 {
			paidAfterCancel++
		}
	}
	if paidAfterCancel != 2 {
		t.Errorf("%d rows of the orders changed after their final event are at version 3, want 2", paidAfterCancel)
	}
}
