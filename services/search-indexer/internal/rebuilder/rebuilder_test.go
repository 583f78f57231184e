package rebuilder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/rebuilder"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// TestRebuildUnderLiveWrites rebuilds the index while the live projector
// (a Sequencer over the live model, writing through the alias) is behind
// and keeps applying a stream of new events, and while a reader searches
// through the alias without pause. The reader must never fail nor see fewer
// orders than were searchable before the rebuild; afterwards the index must
// be exactly the fold of the store, behind the alias on orders-v2, with
// orders-v1 gone.
func TestRebuildUnderLiveWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := newWorkload(e.store, 1)
	initial := orderEvents(w.run(ctx, t, 3000))

	// The live projector is behind: it has applied 60% of the store.
	seq := e.liveSequencer()
	applied := len(initial) * 6 / 10
	if err := applyLive(ctx, seq, initial[:applied], 200); err != nil {
		t.Fatal(err)
	}
	backlog := initial[applied:]
	minDocs := int64(len(e.indexed(t)))
	if minDocs == 0 {
		t.Fatal("nothing searchable before the rebuild")
	}

	var (
		reads, fewer atomic.Int64
		readErrMu    sync.Mutex
		readErrs     []error
		stopRead     = make(chan struct{})
		readerDone   = make(chan struct{})
	)
	go func() {
		defer close(readerDone)
		q := elastic.NewBoolQuery().Must(elastic.NewMatchQuery("item_names", "lamp desk mug")).
			Filter(elastic.NewRangeQuery("total_cents").Gte(0))
		for {
			select {
			case <-stopRead:
				return
			default:
			}
			res, err := e.es.Search(e.names.Alias).Query(elastic.NewMatchAllQuery()).Size(1).TrackTotalHits(true).Do(ctx)
			if err == nil {
				if res.TotalHits() < minDocs {
					fewer.Add(1)
				}
				_, err = e.es.Search(e.names.Alias).Query(q).Size(5).Do(ctx)
			}
			if err != nil {
				readErrMu.Lock()
				readErrs = append(readErrs, err)
				readErrMu.Unlock()
				continue
			}
			reads.Add(1)
		}
	}()

	// The live writer appends commands and applies them (first the backlog)
	// through the alias, in small batches like the consumer.
	var (
		appended atomic.Int64
		stopLive = make(chan struct{})
		liveDone = make(chan error, 1)
	)
	go func() {
		queue := backlog
		for {
			select {
			case <-stopLive:
				liveDone <- applyLive(ctx, seq, queue, 200)
				return
			default:
			}
			evs, err := w.step(ctx)
			if err != nil {
				liveDone <- err
				return
			}
			appended.Add(int64(len(evs)))
			queue = append(queue, orderEvents(evs)...)
			if len(queue) >= 20 {
				n := min(len(queue), 50)
				if err := applyLive(ctx, seq, queue[:n], n); err != nil {
					liveDone <- err
					return
				}
				queue = queue[n:]
			}
		}
	}()

	// Small batches and a small cache, so that the fill takes several
	// batches and reads orders that left the cache back from the index.
	reb := e.rebuilder(rebuilder.Options{BatchSize: 500, MaxCached: 50, DeleteGrace: 300 * time.Millisecond})
	var tr rebuild.Tracker
	before := appended.Load()
	err := reb.Rebuild(ctx, &tr)
	during := appended.Load() - before
	close(stopLive)
	if lerr := <-liveDone; lerr != nil {
		t.Errorf("live writer: %v", lerr)
	}
	close(stopRead)
	<-readerDone
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}

	p := tr.Get()
	t.Logf("rebuild: %d events, %d caught up after the swap, %.0f events/s; live writer appended %d meanwhile; reader searched %d times",
		p.Events, p.CaughtUpAfter, p.EventsPerSec, during, reads.Load())
	if p.Phase != "done" || p.Error != "" || p.SwappedAt.IsZero() {
		t.Errorf("progress %+v, want done after a swap", p)
	}
	if during == 0 {
		t.Error("the live writer appended nothing while the rebuild ran: the test did not test live writes")
	}
	if len(readErrs) > 0 {
		t.Errorf("%d searches through the alias failed, first: %v", len(readErrs), readErrs[0])
	}
	if reads.Load() == 0 {
		t.Error("the reader never searched")
	}
	if n := fewer.Load(); n > 0 {
		t.Errorf("%d searches saw fewer than the %d orders searchable before the rebuild", n, minDocs)
	}

	v1, v2 := e.prefix+"orders-v1", e.prefix+"orders-v2"
	if got := e.aliasTargets(t); !reflect.DeepEqual(got, []string{v2}) {
		t.Errorf("alias points at %v, want [%s]", got, v2)
	}
	if got, want := e.indices(t), []string{v2, e.names.CheckpointIndex}; !reflect.DeepEqual(got, want) {
		t.Errorf("indices %v, want %v (%s deleted)", got, want, v1)
	}
	settings, err := e.es.IndexGetSettings(v2).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ri := settings[v2].Settings["index"].(map[string]any)["refresh_interval"]; ri != "200ms" {
		t.Errorf("refresh_interval of %s is %v after the swap, want 200ms", v2, ri)
	}

	want, maxPos, _ := storeFold(t, e.store)
	compareIndex(t, e.indexed(t), want)
	if cp := e.checkpoint(t); cp.Position != maxPos {
		t.Errorf("checkpoint position %d, want the last order position %d", cp.Position, maxPos)
	}
}

// TestReplayHealsDeletedDocuments deletes three documents by hand and
// replays from a position P in the middle of the store.
//
// Why replay heals them: it hands every order event after P to the same
// Sequencer the live projector uses. For an order without a document the
// model reports version 0, so the order's first event after P is a gap
// (0 -> k), which the Sequencer fills by reading versions 1..k-1 from the
// event store; the model then folds the whole stream and writes it at the
// stream's version. Orders that still have their documents are skipped by
// version. An order whose events all lie at or before P gets no event from
// the replay and stays missing: replaying from P repairs what happened after
// P, a rebuild repairs everything.
//
// Elasticsearch remembers a deleted document's version (one above its last)
// for index.gc_deletes, 60s by default, and refuses lower external versions
// meanwhile. The model reports that as searchmodel.ErrDeleted instead of
// mistaking the 409 for "a newer version is stored"; the test shows that,
// then lets the tombstones go at once (gc_deletes 0s) rather than waiting a
// minute.
func TestReplayHealsDeletedDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	all := orderEvents(newWorkload(e.store, 2).run(ctx, t, 600))
	if err := applyLive(ctx, e.liveSequencer(), all, 100); err != nil {
		t.Fatal(err)
	}
	want, maxPos, total := storeFold(t, e.store)
	compareIndex(t, e.indexed(t), want)

	from := all[len(all)/2].Position
	first, last := map[uuid.UUID]int64{}, map[uuid.UUID]int64{}
	for _, ev := range all {
		if _, ok := first[ev.StreamID]; !ok {
			first[ev.StreamID] = ev.Position
		}
		last[ev.StreamID] = ev.Position
	}
	var before, straddling, after uuid.UUID
	for _, ev := range all { // in append order, so the choice is stable
		id := ev.StreamID
		switch {
		case before == uuid.Nil && last[id] <= from:
			before = id
		case straddling == uuid.Nil && first[id] <= from && last[id] > from:
			straddling = id
		case after == uuid.Nil && first[id] > from:
			after = id
		}
	}
	if before == uuid.Nil || straddling == uuid.Nil || after == uuid.Nil {
		t.Fatalf("workload lacks an order before, across or after position %d", from)
	}
	for _, id := range []uuid.UUID{before, straddling, after} {
		if _, err := e.es.Delete().Index(e.names.Alias).Id(id.String()).Do(ctx); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}

	var tr rebuild.Tracker
	err := e.rebuilder(rebuilder.Options{BatchSize: 100, NoRetry: true}).Replay(ctx, from, &tr)
	if !errors.Is(err, searchmodel.ErrDeleted) {
		t.Fatalf("replay right after the deletion: %v, want ErrDeleted", err)
	}
	if p := tr.Get(); p.Phase != "failed" {
		t.Errorf("progress %+v, want failed", p)
	}

	if _, err := e.es.IndexPutSettings(e.names.Alias).BodyString(`{"index": {"gc_deletes": "0s"}}`).Do(ctx); err != nil {
		t.Fatal(err)
	}
	tr = rebuild.Tracker{}
	if err := e.rebuilder(rebuilder.Options{BatchSize: 100, RetryFor: 30 * time.Second}).Replay(ctx, from, &tr); err != nil {
		t.Fatalf("replay from %d: %v", from, err)
	}
	p := tr.Get()
	if p.Phase != "done" || p.FromPosition != from || p.Events != total {
		t.Errorf("progress %+v, want done, from_position %d, %d order events read", p, from, total)
	}

	delete(want, before.String())
	compareIndex(t, e.indexed(t), want)
	if cp := e.checkpoint(t); cp.Position != maxPos {
		t.Errorf("checkpoint position %d, want %d", cp.Position, maxPos)
	}
}

// gatedStore is the real event store whose commit-order reads wait until
// the gate opens, so that the test can look at a rebuild in mid-flight.
type gatedStore struct {
	*eventstore.Store
	entered chan struct{}
	once    sync.Once
	gate    chan struct{}
}

func (g *gatedStore) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, after, ctx.Err()
	}
	return g.Store.ReadAll(ctx, after, limit)
}

// TestAdminEndpoint drives a rebuild and a replay through the admin
// routes: 202 to start, 409 while one runs, progress while it runs, done
// at the end, and the checkpoint reset to the rebuilt index.
func TestAdminEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	all := orderEvents(newWorkload(e.store, 3).run(ctx, t, 400))
	// The live projector had applied half of it.
	if err := applyLive(ctx, e.liveSequencer(), all[:len(all)/2], 100); err != nil {
		t.Fatal(err)
	}
	if cp := e.checkpoint(t); cp.Position != all[len(all)/2-1].Position || cp.EventsApplied != int64(len(all)/2) {
		t.Fatalf("checkpoint before the rebuild %+v", cp)
	}

	store := &gatedStore{Store: e.store, entered: make(chan struct{}), gate: make(chan struct{})}
	reb := rebuilder.New(e.es, store, e.names, e.log, rebuilder.Options{BatchSize: 100, DeleteGrace: 100 * time.Millisecond})
	jobs, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	r := chi.NewRouter()
	rebuild.NewAdmin(jobs, e.log, reb.Rebuild, reb.Replay).Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	call := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return res.StatusCode, body
	}
	progress := func() rebuild.Progress {
		t.Helper()
		res, err := http.Get(srv.URL + "/admin/rebuild")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/rebuild: %d", res.StatusCode)
		}
		var p rebuild.Progress
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitDone := func() rebuild.Progress {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			p := progress()
			if p.Phase == "done" || p.Phase == "failed" {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %+v after 60s", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if code, body := call(http.MethodPost, "/admin/rebuild"); code != http.StatusAccepted || body["progress"] != "/admin/rebuild" {
		t.Fatalf("POST /admin/rebuild: %d %v, want 202", code, body)
	}
	<-store.entered // the rebuild is filling, held at its first read
	if code, body := call(http.MethodPost, "/admin/rebuild"); code != http.StatusConflict || body["status"] != float64(409) {
		t.Errorf("second POST /admin/rebuild: %d %v, want 409", code, body)
	}
	if code, _ := call(http.MethodPost, "/admin/replay?from_position=0"); code != http.StatusConflict {
		t.Errorf("POST /admin/replay during a rebuild: %d, want 409", code)
	}
	if p := progress(); p.Phase != "filling" || p.Events != 0 || p.Total != int64(len(all)) || p.StartedAt.IsZero() {
		t.Errorf("progress while held: %+v, want filling, 0 of %d events", p, len(all))
	}
	close(store.gate)

	p := waitDone()
	if p.Phase != "done" || p.Events != int64(len(all)) || p.CaughtUpAfter != 0 || p.Error != "" || p.FinishedAt.IsZero() {
		t.Errorf("final progress %+v, want done after %d events, none caught up", p, len(all))
	}
	want, maxPos, total := storeFold(t, e.store)
	compareIndex(t, e.indexed(t), want)
	if got := e.aliasTargets(t); !reflect.DeepEqual(got, []string{e.prefix + "orders-v2"}) {
		t.Errorf("alias points at %v", got)
	}
	// The checkpoint describes the rebuilt index: every order event folded,
	// up to the last one, although the live projector had done half.
	if cp := e.checkpoint(t); cp.Position != maxPos || cp.EventsApplied != total {
		t.Errorf("checkpoint after the rebuild %+v, want position %d, %d events applied", cp, maxPos, total)
	}

	if code, body := call(http.MethodPost, "/admin/replay?from_position=abc"); code != http.StatusBadRequest {
		t.Errorf("POST /admin/replay?from_position=abc: %d %v, want 400", code, body)
	}
	from := all[len(all)-10].Position
	if code, _ := call(http.MethodPost, "/admin/replay?from_position="+strconv.FormatInt(from, 10)); code != http.StatusAccepted {
		t.Fatalf("POST /admin/replay: %d, want 202", code)
	}
	if p := waitDone(); p.Phase != "done" || p.FromPosition != from || p.Events != total {
		t.Errorf("replay progress %+v, want done from %d", p, from)
	}
	// Everything replayed was already there: nothing changed.
	compareIndex(t, e.indexed(t), want)
	if cp := e.checkpoint(t); cp.Position != maxPos || cp.EventsApplied != total {
		t.Errorf("checkpoint after the replay %+v", cp)
	}
}

// TestSecondRebuildAndLeftovers checks the index versioning across
// rebuilds: a leftover of a dead rebuild is deleted and its number
// skipped, a rebuild that is still filling (fresh heartbeat) blocks another.
func TestSecondRebuildAndLeftovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	newWorkload(e.store, 4).run(ctx, t, 200)
	want, _, _ := storeFold(t, e.store)
	reb := e.rebuilder(rebuilder.Options{DeleteGrace: time.Millisecond})

	// A dead rebuild left orders-v2 behind (no heartbeat: an old build).
	if _, err := e.es.CreateIndex(e.prefix + "orders-v2").BodyString(searchdoc.Mapping).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reb.Rebuild(ctx, &rebuild.Tracker{}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.indices(t), []string{e.prefix + "orders-v3", e.names.CheckpointIndex}; !reflect.DeepEqual(got, want) {
		t.Errorf("after the first rebuild: indices %v, want %v", got, want)
	}
	compareIndex(t, e.indexed(t), want)

	// A rebuild in progress elsewhere: its index carries a fresh heartbeat.
	busy := searchmodel.NewRebuildTarget(e.es, e.names, nil)
	if err := busy.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if busy.Index() != e.prefix+"orders-v4" {
		t.Fatalf("busy rebuild fills %s", busy.Index())
	}
	var tr rebuild.Tracker
	if err := reb.Rebuild(ctx, &tr); !errors.Is(err, searchmodel.ErrRebuildInProgress) {
		t.Fatalf("rebuild while another fills: %v, want ErrRebuildInProgress", err)
	}
	if err := busy.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reb.Rebuild(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	if got, want := e.aliasTargets(t), []string{e.prefix + "orders-v4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after the second rebuild: alias at %v, want %v", got, want)
	}
	compareIndex(t, e.indexed(t), want)
}

// writesBeforeSwap is a RebuildTarget that runs before just ahead of the swap.
type writesBeforeSwap struct {
	*searchmodel.RebuildTarget
	before func()
}

func (w writesBeforeSwap) Swap(ctx context.Context) error {
	w.before()
	return w.RebuildTarget.Swap(ctx)
}

// TestCatchUpAfterSwap makes the live projector apply new events to the old
// index after the fill has read the store and before the alias moves: only
// the catch-up can bring them into the new index.
func TestCatchUpAfterSwap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := newWorkload(e.store, 6)
	seq := e.liveSequencer()
	if err := applyLive(ctx, seq, orderEvents(w.run(ctx, t, 300)), 100); err != nil {
		t.Fatal(err)
	}
	var late []events.Envelope
	target := writesBeforeSwap{
		RebuildTarget: searchmodel.NewRebuildTarget(e.es, e.names, seq, searchmodel.WithDeleteGrace(time.Millisecond)),
		before: func() {
			late = orderEvents(w.run(ctx, t, 60))
			if err := applyLive(ctx, seq, late, 100); err != nil {
				t.Error(err)
			}
		},
	}
	var tr rebuild.Tracker
	err := rebuild.Run(ctx, e.store, target, &tr, rebuild.Options{StreamTypes: []events.StreamType{events.StreamOrder}})
	target.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if p := tr.Get(); p.CaughtUpAfter < int64(len(late)) {
		t.Errorf("caught up %d events, want at least the %d applied to the old index before the swap", p.CaughtUpAfter, len(late))
	}
	want, _, _ := storeFold(t, e.store)
	compareIndex(t, e.indexed(t), want)
}

// TestRebuildWaitsForHeldBackEvents holds a write transaction open while
// the store fills, so that every event the test appends sits behind it in
// commit-safe order and the store's reads come back empty. The rebuild must
// wait for it rather than swap in an empty index.
func TestRebuildWaitsForHeldBackEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	blocker, err := e.store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocker.Rollback(ctx) }()
	if _, err := blocker.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil { // takes a transaction id
		t.Fatal(err)
	}
	newWorkload(e.store, 5).run(ctx, t, 300)

	var tr rebuild.Tracker
	done := make(chan error, 1)
	go func() { done <- e.rebuilder(rebuilder.Options{DeleteGrace: time.Millisecond}).Rebuild(ctx, &tr) }()
	select {
	case err := <-done:
		t.Fatalf("rebuild ended while the store's events were held back: %v (%+v)", err, tr.Get())
	case <-time.After(time.Second):
	}
	if p := tr.Get(); p.Phase != "filling" || p.Events != 0 {
		t.Errorf("progress while held back %+v, want filling, 0 events", p)
	}
	if got := e.aliasTargets(t); !reflect.DeepEqual(got, []string{e.prefix + "orders-v1"}) {
		t.Errorf("alias moved to %v while the fill waited", got)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want, _, total := storeFold(t, e.store)
	if p := tr.Get(); p.Events != total || p.CaughtUpAfter != 0 {
		t.Errorf("progress %+v, want all %d order events filled", p, total)
	}
	compareIndex(t, e.indexed(t), want)
}

// TestRebuildThroughput measures a rebuild of a larger store (not run by
// default; not asserted beyond correctness of the count):
//
//	SEARCH_REBUILD_EVENTS=100000 go test ./services/search-indexer/internal/rebuilder -run TestRebuildThroughput -v -count=1
//
// For comparison it also replays the same store from position 0 into an
// empty index through the live model (Sequencer + Model.Apply), the path a
// rebuild without its own fill sink would take.
func TestRebuildThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SEARCH_REBUILD_EVENTS"))
	if n <= 0 {
		t.Skip("set SEARCH_REBUILD_EVENTS=100000 to measure")
	}
	e := newEnv(t)
	ctx := context.Background()
	start := time.Now()
	fill(ctx, t, e.store, n, 8)
	want, _, orderEvs := storeFold(t, e.store)
	t.Logf("store: %d order events of %d orders, appended in %s", orderEvs, len(want), time.Since(start).Round(time.Millisecond))

	report := func(p rebuild.Progress) {
		t.Logf("%-12s %8d / ~%d events  %8.0f events/s", p.Phase, p.Events, p.Total, p.EventsPerSec)
	}
	var tr rebuild.Tracker
	start = time.Now()
	if err := e.rebuilder(rebuilder.Options{Report: report, DeleteGrace: time.Millisecond}).Rebuild(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("REBUILD: %d order events in %s = %.0f events/s (%.0f orders/s)", orderEvs, took.Round(time.Millisecond),
		float64(orderEvs)/took.Seconds(), float64(len(want))/took.Seconds())
	if got := len(e.indexed(t)); got != len(want) {
		t.Errorf("rebuilt index holds %d orders, want %d", got, len(want))
	}

	// The live path, into a fresh alias of its own.
	other := fmt.Sprintf("%sreplay-", e.prefix)
	names := searchmodel.PrefixedNames(other)
	if err := searchmodel.EnsureIndices(ctx, e.es, names); err != nil {
		t.Fatal(err)
	}
	tr = rebuild.Tracker{}
	start = time.Now()
	if err := rebuilder.New(e.es, e.store, names, e.log, rebuilder.Options{BatchSize: 500}).Replay(ctx, 0, &tr); err != nil {
		t.Fatal(err)
	}
	took = time.Since(start)
	t.Logf("LIVE-PATH REPLAY (batches of 500, as the consumer): %d order events in %s = %.0f events/s",
		orderEvs, took.Round(time.Millisecond), float64(orderEvs)/took.Seconds())
}
