package rebuilder_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

// tailer is the live projector as the rebuild meets it: it receives events
// only once the relay could read them (commit-safe order from its cursor)
// and feeds them to the Sequencer over the model that follows the active key.
type tailer struct {
	e       *env
	seq     *consumer.Sequencer
	cursor  eventstore.Cursor
	applied atomic.Int64
}

// step delivers up to limit events and reports how many.
func (tl *tailer) step(ctx context.Context, limit int) (int, error) {
	batch, next, err := tl.e.store.ReadAll(ctx, tl.cursor, limit)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	if err := tl.seq.HandleBatch(ctx, batch); err != nil {
		return 0, err
	}
	tl.cursor = next
	tl.applied.Add(int64(len(batch)))
	return len(batch), nil
}

// checkCustomerStats is what a query reader requires of a customer's stats
// hash: every field, integers that make sense together, a valid time.
func checkCustomerStats(h map[string]string) error {
	if len(h) != 5 {
		return fmt.Errorf("hash has %d fields, want 5: %v", len(h), h)
	}
	n := map[string]int64{}
	for _, f := range []string{statskeys.FieldOrdersPlaced, statskeys.FieldOrdersPaid, statskeys.FieldOrdersCancelled, statskeys.FieldTotalSpentCents} {
		v, err := strconv.ParseInt(h[f], 10, 64)
		if err != nil {
			return fmt.Errorf("field %s: %w", f, err)
		}
		n[f] = v
	}
	if n["orders_placed"] < 1 || n["orders_paid"] > n["orders_placed"] || n["orders_cancelled"] > n["orders_placed"] || n["total_spent_cents"] < 0 {
		return fmt.Errorf("inconsistent stats %v", h)
	}
	if _, err := time.Parse(time.RFC3339Nano, h[statskeys.FieldLastOrderAt]); err != nil {
		return fmt.Errorf("last_order_at: %w", err)
	}
	return nil
}

// TestRebuildUnderLiveWrites rebuilds while the live projector, behind by
// half the store, keeps applying, new events keep being appended, and a
// reader keeps reading customer stats through the active namespace. The
// reader never fails; afterwards the active namespace equals the reference
// fold of the whole store exactly, and the old namespace is gone.
func TestRebuildUnderLiveWrites(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := e.simulate(t, 21, 40, 3000)

	// The live projector got through half of the store so far.
	live := &tailer{e: e, seq: e.liveSequencer()}
	for live.applied.Load() < 1500 {
		if _, err := live.step(ctx, int(min(200, 1500-live.applied.Load()))); err != nil {
			t.Fatal(err)
		}
	}
	var customers []string
	for _, k := range statstest.ScanKeys(t, e.rdb, e.ns(1)+":customer:*") {
		customers = append(customers, strings.TrimPrefix(k, e.ns(1)+":customer:"))
	}
	if len(customers) < 10 {
		t.Fatalf("only %d customers in the live namespace", len(customers))
	}

	// The reader, as the query API reads: resolve the active namespace, then
	// read the hash (two round trips, not atomic).
	var reads atomic.Int64
	seen := map[string]int{}
	var readErrs []error
	stopRead, readDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		for i := 0; ; i++ {
			select {
			case <-stopRead:
				return
			default:
			}
			ns, err := e.rdb.Get(ctx, e.activeKey).Result()
			if errors.Is(err, redis.Nil) {
				ns, err = e.defaultNS, nil
			}
			if err == nil {
				var h map[string]string
				id := customers[i%len(customers)]
				if h, err = e.rdb.HGetAll(ctx, statskeys.Keys{NS: ns}.CustomerStats(id)).Result(); err == nil {
					if err = checkCustomerStats(h); err != nil {
						err = fmt.Errorf("customer %s in %s: %w", id, ns, err)
					}
				}
			}
			if err != nil && len(readErrs) < 10 {
				readErrs = append(readErrs, err)
			}
			seen[ns]++
			reads.Add(1)
		}
	}()
	waitFor(t, "first reads", func() bool { return reads.Load() >= 50 })

	// Writers keep appending; the live projector keeps applying.
	var appended atomic.Int64
	var appendErr, liveErr error
	var drainTo atomic.Int64
	stopAppend := make(chan struct{})
	var writers sync.WaitGroup
	writers.Go(func() {
		for {
			select {
			case <-stopAppend:
				return
			default:
			}
			if appendErr = sim.Run(1); appendErr != nil {
				return
			}
			appended.Add(1)
		}
	})
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		for {
			n, err := live.step(ctx, 100)
			if err != nil {
				liveErr = err
				return
			}
			if n == 0 {
				if to := drainTo.Load(); to > 0 && live.applied.Load() >= to {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	waitFor(t, "live writes", func() bool { return appended.Load() >= 20 })

	var tr rebuild.Tracker
	phases := map[string]bool{}
	appendedBefore, liveBefore := appended.Load(), live.applied.Load()
	res, err := e.rebuilder(rebuilder.WithBatchSize(500)).Rebuild(ctx, &tr, func(p rebuild.Progress) { phases[p.Phase] = true })
	appendedDuring, liveDuring := appended.Load()-appendedBefore, live.applied.Load()-liveBefore
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	readsAfter := reads.Load()
	waitFor(t, "reads after the rebuild", func() bool { return reads.Load() >= readsAfter+50 })

	close(stopAppend)
	writers.Wait()
	if appendErr != nil {
		t.Fatal(appendErr)
	}
	total, err := e.store.CountAfter(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	drainTo.Store(total)
	<-liveDone
	if liveErr != nil {
		t.Fatalf("live projector: %v", liveErr)
	}
	close(stopRead)
	<-readDone

	if len(readErrs) > 0 {
		t.Errorf("%d reads, failures: %v", reads.Load(), errors.Join(readErrs...))
	}
	if seen[e.ns(1)] == 0 || seen[e.ns(2)] == 0 {
		t.Errorf("the reader saw namespaces %v, want both %s and %s", seen, e.ns(1), e.ns(2))
	}
	if appendedDuring == 0 || liveDuring == 0 {
		t.Errorf("during the rebuild %d events were appended and %d applied live: no concurrency exercised", appendedDuring, liveDuring)
	}
	if want := (rebuilder.Result{Namespace: e.ns(2), OldNamespace: e.ns(1), OldKeysDeleted: res.OldKeysDeleted}); res != want || res.OldKeysDeleted == 0 {
		t.Errorf("result %+v, want %+v with old keys deleted", res, want)
	}
	p := tr.Get()
	if p.Phase != "done" || p.Error != "" || p.Events < 3000 || p.Total < 3000 || p.SwappedAt.IsZero() || !phases["done"] {
		t.Errorf("progress %+v (reported phases %v)", p, phases)
	}
	t.Logf("%d reads over namespaces %v; %d events appended and %d applied live during the rebuild; rebuild %d events (%d after the swap), %.0f events/s",
		reads.Load(), seen, appendedDuring, liveDuring, p.Events, p.CaughtUpAfter, p.EventsPerSec)

	if got := e.active(t); got != e.ns(2) {
		t.Fatalf("active namespace %s, want %s", got, e.ns(2))
	}
	all := e.readAll(t)
	statstest.RequireVariety(t, all)
	statstest.AssertModel(t, e.rdb, e.ns(2), statstest.Reference(e.ns(2), all, fixedNow))
	for _, k := range e.keysUnder(t) {
		if k != e.activeKey && !strings.HasPrefix(k, e.ns(2)+":") {
			t.Errorf("key %s is left over: the deployment should hold only %s and namespace %s", k, e.activeKey, e.ns(2))
		}
	}
}

// TestRebuildSweepsLeftovers rebuilds twice over leftovers of interrupted
// rebuilds: a partly filled s2 and an old s7. The first rebuild deletes them
// and fills s2 from scratch; the second moves on to s3. Keys that are not a
// generated namespace's are left alone.
func TestRebuildSweepsLeftovers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := e.simulate(t, 5, 10, 500)
	e.applyLive(t, e.readAll(t), 100)

	junk := uuid.NewString()
	e.rdb.HSet(ctx, e.ns(2)+":customer:"+junk, "orders_placed", "99")
	e.rdb.HSet(ctx, e.ns(2)+":checkpoint", "position", "99999", "events_applied", "7")
	e.rdb.Set(ctx, e.ns(7)+":version:"+junk, "3", 0)
	e.rdb.Set(ctx, e.prefix+"custom:keep", "not a stats namespace", 0)

	rb := e.rebuilder()
	res, err := rb.Rebuild(ctx, &rebuild.Tracker{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Namespace != e.ns(2) || res.OldNamespace != e.ns(1) || res.StaleKeysDeleted != 3 {
		t.Fatalf("result %+v, want %s replacing %s with 3 stale keys deleted", res, e.ns(2), e.ns(1))
	}
	statstest.AssertModel(t, e.rdb, e.ns(2), statstest.Reference(e.ns(2), e.readAll(t), fixedNow))
	for _, ns := range []string{e.ns(1), e.ns(7)} {
		if keys := statstest.ScanKeys(t, e.rdb, ns+":*"); len(keys) > 0 {
			t.Fatalf("namespace %s still has %d keys", ns, len(keys))
		}
	}

	if err := sim.Run(200); err != nil {
		t.Fatal(err)
	}
	// No live projector runs here: wait until every event is commit-safe,
	// or the rebuild may stop short of the newest (in production the live
	// projector brings those to the new namespace).
	all := e.readAll(t)
	if len(all) != 700 {
		t.Fatalf("store holds %d events, want 700", len(all))
	}
	res, err = rb.Rebuild(ctx, &rebuild.Tracker{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Namespace != e.ns(3) || res.OldNamespace != e.ns(2) || res.StaleKeysDeleted != 0 {
		t.Fatalf("second result %+v, want %s replacing %s", res, e.ns(3), e.ns(2))
	}
	statstest.AssertModel(t, e.rdb, e.ns(3), statstest.Reference(e.ns(3), all, fixedNow))
	keys := e.keysUnder(t)
	want := map[string]bool{e.activeKey: true, e.prefix + "custom:keep": true}
	for _, k := range keys {
		if !want[k] && !strings.HasPrefix(k, e.ns(3)+":") {
			t.Errorf("key %s is left over", k)
		}
	}
	if got := e.rdb.Get(ctx, e.prefix+"custom:keep").Val(); got != "not a stats namespace" {
		t.Errorf("custom:keep = %q", got)
	}
}

// TestRebuildFailsBeforeSwap meets an event the model rejects halfway
// through the fill: the rebuild fails, the live namespace stays active and
// unchanged, the partly filled namespace is deleted and the lease released.
func TestRebuildFailsBeforeSwap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.simulate(t, 8, 10, 400)
	e.applyLive(t, e.readAll(t), 100)
	// An OrderPaid as the first event of an order names no customer.
	if _, err := e.store.Append(ctx, eventstore.AppendRequest{StreamType: events.StreamOrder, StreamID: uuid.New(),
		Events: []eventstore.NewEvent{{Data: events.OrderPaid{AmountCents: 100, Method: "card"}}}}); err != nil {
		t.Fatal(err)
	}
	e.simulate(t, 9, 10, 100)
	e.readAll(t) // every event commit-safe: the fill must reach the poison
	before := statstest.Dump(t, e.rdb, e.ns(1))

	var tr rebuild.Tracker
	_, err := e.rebuilder(rebuilder.WithBatchSize(100)).Rebuild(ctx, &tr, nil)
	if err == nil || !strings.Contains(err.Error(), "has no OrderPlaced") {
		t.Fatalf("rebuild error %v, want the rejected OrderPaid", err)
	}
	if p := tr.Get(); p.Phase != "failed" || !strings.Contains(p.Error, "has no OrderPlaced") || !p.SwappedAt.IsZero() || p.Events < 400 {
		t.Fatalf("progress %+v", p)
	}
	if got := e.active(t); got != e.ns(1) {
		t.Fatalf("active namespace %s, want %s", got, e.ns(1))
	}
	if e.rdb.Exists(ctx, e.activeKey).Val() != 0 {
		t.Fatal("the failed rebuild set the active-namespace key")
	}
	if diffs := statstest.Diff(statstest.Dump(t, e.rdb, e.ns(1)), before); len(diffs) > 0 {
		t.Fatalf("the live namespace changed: %v", diffs)
	}
	if keys := statstest.ScanKeys(t, e.rdb, e.ns(2)+":*"); len(keys) > 0 {
		t.Fatalf("the partly filled namespace %s still has %d keys", e.ns(2), len(keys))
	}
	if e.rdb.Exists(ctx, e.lockKey).Val() != 0 {
		t.Fatal("the rebuild lease was not released")
	}
}

// TestRebuildBusy finds the lease held by another rebuild and gives up
// without touching anything.
func TestRebuildBusy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.simulate(t, 3, 5, 50)
	if err := e.rdb.Set(ctx, e.lockKey, "another-rebuild", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	var tr rebuild.Tracker
	_, err := e.rebuilder(rebuilder.WithLease(3*time.Second, 300*time.Millisecond)).Rebuild(ctx, &tr, nil)
	if !errors.Is(err, rebuilder.ErrBusy) {
		t.Fatalf("rebuild error %v, want ErrBusy", err)
	}
	if p := tr.Get(); p.Phase != "failed" || !strings.Contains(p.Error, rebuilder.ErrBusy.Error()) {
		t.Fatalf("progress %+v", p)
	}
	if got := e.rdb.Get(ctx, e.lockKey).Val(); got != "another-rebuild" {
		t.Fatalf("lease = %q, want the other rebuild's", got)
	}
	if keys := e.keysUnder(t); len(keys) != 1 {
		t.Fatalf("keys %v, want only the lease", keys)
	}
}

// TestReplayFromBackup restores the live namespace as of position P (a
// backup) and replays from P: the namespace equals the reference of the
// whole store exactly, each event applied once.
func TestReplayFromBackup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.simulate(t, 13, 20, 1500)
	all := e.readAll(t)
	statstest.RequireVariety(t, all)
	p := all[1000].Position
	var upToP []events.Envelope
	for _, ev := range all {
		if ev.Position <= p {
			upToP = append(upToP, ev)
		}
	}
	e.applyLive(t, upToP, 250)
	want := statstest.Reference(e.ns(1), all, fixedNow)
	if len(statstest.Diff(statstest.Dump(t, e.rdb, e.ns(1)), want)) == 0 {
		t.Fatal("the backup already equals the reference: the test would prove nothing")
	}

	var tr rebuild.Tracker
	if err := e.rebuilder(rebuilder.WithBatchSize(300)).Replay(ctx, p, &tr, nil); err != nil {
		t.Fatal(err)
	}
	statstest.AssertModel(t, e.rdb, e.ns(1), want)
	// rebuild.Replay counts the events it reads (the whole store: the
	// commit-safe order is not position order) against an estimate of those
	// after P.
	if pr := tr.Get(); pr.Phase != "done" || pr.FromPosition != p || pr.Events != int64(len(all)) || pr.Total != int64(len(all)-len(upToP)) {
		t.Fatalf("progress %+v, want %d events read, %d after position %d", pr, len(all), len(all)-len(upToP), p)
	}
}

// TestReplayRestoresLostKeys deletes one customer's stats and the order
// hashes (which hold the orders' versions) of all their orders, then
// replays from a position P before the last event of each of those orders.
// The Sequencer sees those orders at version 0 and heals each from its
// first event, events before P included, so the customer's stats are
// recomputed exactly. Every other stream's events after P are skipped as
// duplicates. (A stream whose events all precede P is not replayed: P must
// come before the last event of every stream that lost keys.)
func TestReplayRestoresLostKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.simulate(t, 17, 150, 1500)
	all := e.readAll(t)
	e.applyLive(t, all, 500)
	want := statstest.Reference(e.ns(1), all, fixedNow)
	statstest.AssertModel(t, e.rdb, e.ns(1), want)

	// Each customer's order events, and the position P before the earliest
	// last event of their orders. The victim is the customer with the most
	// events at or before that P (those the replay must heal).
	placedBy := map[uuid.UUID]uuid.UUID{}
	for _, ev := range all {
		if d, ok := ev.Data.(events.OrderPlaced); ok {
			placedBy[ev.StreamID] = d.CustomerID
		}
	}
	type customer struct {
		events  []events.Envelope
		lastPos map[uuid.UUID]int64
	}
	customers := map[uuid.UUID]*customer{}
	for _, ev := range all {
		c, ok := placedBy[ev.StreamID]
		if !ok {
			continue
		}
		if customers[c] == nil {
			customers[c] = &customer{lastPos: map[uuid.UUID]int64{}}
		}
		customers[c].events = append(customers[c].events, ev)
		customers[c].lastPos[ev.StreamID] = max(customers[c].lastPos[ev.StreamID], ev.Position)
	}
	replayFrom := func(c *customer) (p int64, healed int) {
		p = int64(1) << 62
		for _, pos := range c.lastPos {
			p = min(p, pos-1)
		}
		for _, ev := range c.events {
			if ev.Position <= p {
				healed++
			}
		}
		return p, healed
	}
	var victim uuid.UUID
	var p int64
	healed := -1
	for id, c := range customers {
		if cp, h := replayFrom(c); len(c.lastPos) >= 2 && h > healed {
			victim, p, healed = id, cp, h
		}
	}
	victimEvents, lastPos := customers[victim].events, customers[victim].lastPos
	if healed < 3 {
		t.Fatalf("customer %s has %d orders and %d events before P=%d: choose another seed", victim, len(lastPos), healed, p)
	}

	keys := statstest.ScanKeys(t, e.rdb, e.ns(1)+":customer:"+victim.String())
	for id := range lastPos {
		keys = append(keys, e.ns(1)+":order:"+id.String())
	}
	if n := e.rdb.Del(ctx, keys...).Val(); n != int64(len(lastPos))+1 {
		t.Fatalf("deleted %d keys, want %d", n, len(lastPos)+1)
	}
	e.rdb.ZRem(ctx, e.ns(1)+":top-customers", victim.String())
	if len(statstest.Diff(statstest.Dump(t, e.rdb, e.ns(1)), want)) == 0 {
		t.Fatal("nothing was lost")
	}

	var tr rebuild.Tracker
	if err := e.rebuilder().Replay(ctx, p, &tr, nil); err != nil {
		t.Fatal(err)
	}
	// The checkpoint counts applications: the victim's events were applied
	// twice in all, every other event once.
	want = maps.Clone(want)
	cp := maps.Clone(want[e.ns(1)+":checkpoint"].(map[string]string))
	cp["events_applied"] = strconv.Itoa(len(all) + len(victimEvents))
	want[e.ns(1)+":checkpoint"] = cp
	statstest.AssertModel(t, e.rdb, e.ns(1), want)
	t.Logf("customer %s: %d orders, %d events re-applied (%d of them at or before P=%d, healed from the store)",
		victim, len(lastPos), len(victimEvents), healed, p)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
