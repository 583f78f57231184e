package rebuilder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/rebuilder"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// env is one test's event store and index names, both its own.
type env struct {
	es     *elastic.Client
	store  *eventstore.Store
	prefix string
	names  searchmodel.Names
	log    *slog.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testenv.RequireElasticsearch(t)
	dbURL := testenv.NewDatabase(t)
	if err := eventstore.Migrate(dbURL); err != nil {
		t.Fatal(err)
	}
	store := eventstore.New(testenv.NewPool(t, dbURL))
	es, err := elasticclient.NewClient(testenv.ElasticsearchURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(es.Stop)
	// The production names under a prefix no other test uses, so that the
	// "<prefix>orders-v<N>" pattern the rebuild scans is this test's alone.
	prefix := "test-rebuild-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "-"
	e := &env{es: es, store: store, prefix: prefix, names: searchmodel.PrefixedNames(prefix),
		log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ix := range e.indices(t) {
			if _, err := es.DeleteIndex(ix).Do(ctx); err != nil && !elastic.IsNotFound(err) {
				t.Logf("delete index %s: %v", ix, err)
			}
		}
	})
	if err := searchmodel.EnsureIndices(context.Background(), es, e.names); err != nil {
		t.Fatal(err)
	}
	return e
}

// testWriter sends the rebuild's logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// indices lists this test's indices, sorted.
func (e *env) indices(t testing.TB) []string {
	t.Helper()
	res, err := e.es.PerformRequest(context.Background(), elastic.PerformRequestOptions{
		Method: http.MethodGet, Path: "/_cat/indices/" + url.PathEscape(e.prefix+"*"),
		Params: url.Values{"format": []string{"json"}, "h": []string{"index"}},
	})
	if err != nil {
		t.Fatalf("list indices: %v", err)
	}
	var rows []struct {
		Index string `json:"index"`
	}
	if err := json.Unmarshal(res.Body, &rows); err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Index)
	}
	sort.Strings(out)
	return out
}

// aliasTargets lists the indices the alias points at.
func (e *env) aliasTargets(t testing.TB) []string {
	t.Helper()
	res, err := e.es.Aliases().Index(e.prefix + "*").Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := res.IndicesByAlias(e.names.Alias)
	sort.Strings(out)
	return out
}

func (e *env) rebuilder(opts rebuilder.Options) *rebuilder.Rebuilder {
	return rebuilder.New(e.es, rebuild.ProjectionReads{Store: e.store}, e.names, e.log, opts)
}

// liveSequencer is the live projector's path into the index: a Sequencer
// over a Model writing through the alias.
func (e *env) liveSequencer() *consumer.Sequencer {
	model := searchmodel.New(e.es, e.names.Alias, e.names.CheckpointIndex)
	return consumer.NewSequencer(model, e.store, consumer.NewMetrics(prometheus.NewRegistry(), "test"))
}

// applyLive hands evs to seq in batches of n, retrying a batch the way the
// consumer does (ErrStale after the alias moved is retried, then healed).
func applyLive(ctx context.Context, seq *consumer.Sequencer, evs []events.Envelope, n int) error {
	for len(evs) > 0 {
		b := evs[:min(n, len(evs))]
		evs = evs[len(b):]
		var err error
		for range 50 {
			if err = seq.HandleBatch(ctx, b); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// orderEvents keeps the order events of evs (the indexer's topic).
func orderEvents(evs []events.Envelope) []events.Envelope {
	var out []events.Envelope
	for _, e := range evs {
		if e.StreamType == events.StreamOrder {
			out = append(out, e)
		}
	}
	return out
}

// workload appends a realistic mix through the domain's Decide functions:
// orders placed, paid, shipped or cancelled, and now and then an account,
// whose events the index must ignore.
type workload struct {
	store     *eventstore.Store
	rng       *rand.Rand
	open      []order.State // orders not shipped or cancelled yet
	customers []uuid.UUID
}

func newWorkload(store *eventstore.Store, seed uint64) *workload {
	w := &workload{store: store, rng: rand.New(rand.NewPCG(seed, 7))}
	for range 20 {
		w.customers = append(w.customers, uuid.New())
	}
	return w
}

// openOrders is how many orders the workload keeps in flight: an order
// lives for several hundred commands, so its events spread over many
// read batches of a rebuild, as in a real store.
const openOrders = 300

var catalog = []events.LineItem{
	{SKU: "LAMP-1", Name: "Desk lamp", UnitPriceCents: 1250},
	{SKU: "BULB-9", Name: "LED bulb", UnitPriceCents: 199},
	{SKU: "MUG-3", Name: "Blue coffee mug", UnitPriceCents: 899},
	{SKU: "DESK-7", Name: "Standing desk", UnitPriceCents: 45000},
	{SKU: "CHAIR-2", Name: "Office chair", UnitPriceCents: 23900},
	{SKU: "PEN-5", Name: "Fountain pen", UnitPriceCents: 2999},
}

// step appends one command's events and returns them as stored.
func (w *workload) step(ctx context.Context) ([]events.Envelope, error) {
	r := w.rng.IntN(100)
	switch {
	case r < 3:
		return w.account(ctx)
	case r < 40 || len(w.open) < openOrders:
		return w.place(ctx)
	}
	i := w.rng.IntN(len(w.open))
	s := w.open[i]
	var (
		ps  []events.Payload
		err error
	)
	switch {
	case w.rng.IntN(5) == 0:
		ps, err = order.DecideCancel(s, order.Cancel{Reason: "customer asked"})
	case s.Status == order.StatusPlaced:
		ps, err = order.DecidePay(s, order.Pay{AmountCents: s.TotalCents, Method: "card"})
	default:
		ps, err = order.DecideShip(s, order.Ship{Carrier: "DHL", TrackingNumber: fmt.Sprintf("JD%08d", w.rng.IntN(1e8))})
	}
	if err != nil {
		return nil, err
	}
	evs, err := w.append(ctx, events.StreamOrder, s.ID, s.Version, ps)
	if err != nil {
		return nil, err
	}
	s = order.Fold(s, evs)
	if s.Status == order.StatusShipped || s.Status == order.StatusCancelled {
		w.open[i] = w.open[len(w.open)-1]
		w.open = w.open[:len(w.open)-1]
	} else {
		w.open[i] = s
	}
	return evs, nil
}

func (w *workload) place(ctx context.Context) ([]events.Envelope, error) {
	var items []events.LineItem
	for _, j := range w.rng.Perm(len(catalog))[:1+w.rng.IntN(3)] {
		it := catalog[j]
		it.Quantity = int64(1 + w.rng.IntN(4))
		items = append(items, it)
	}
	cmd := order.Place{CustomerID: w.customers[w.rng.IntN(len(w.customers))], Items: items, Currency: "EUR",
		TaxCents: int64(w.rng.IntN(500))}
	if w.rng.IntN(2) == 0 {
		cmd.ShippingAddress = &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}
	}
	ps, err := order.DecidePlace(order.State{}, cmd)
	if err != nil {
		return nil, err
	}
	s := order.State{ID: uuid.Must(uuid.NewV7())}
	// A third of the orders are paid in the same command: several events
	// of one stream in one append (one transaction).
	if w.rng.IntN(3) == 0 {
		placed := order.Evolve(s, events.Envelope{StreamID: s.ID, Version: 1, Data: ps[0]})
		pay, err := order.DecidePay(placed, order.Pay{AmountCents: placed.TotalCents, Method: "card"})
		if err != nil {
			return nil, err
		}
		ps = append(ps, pay...)
	}
	evs, err := w.append(ctx, events.StreamOrder, s.ID, 0, ps)
	if err != nil {
		return nil, err
	}
	w.open = append(w.open, order.Fold(s, evs))
	return evs, nil
}

func (w *workload) account(ctx context.Context) ([]events.Envelope, error) {
	ps, err := account.DecideOpen(account.State{}, account.Open{Owner: "Ada", InitialBalanceCents: 1000, Currency: "EUR"})
	if err != nil {
		return nil, err
	}
	return w.append(ctx, events.StreamAccount, uuid.Must(uuid.NewV7()), 0, ps)
}

func (w *workload) append(ctx context.Context, typ events.StreamType, id uuid.UUID, expected int64, ps []events.Payload) ([]events.Envelope, error) {
	req := eventstore.AppendRequest{StreamType: typ, StreamID: id, ExpectedVersion: expected}
	for _, p := range ps {
		req.Events = append(req.Events, eventstore.NewEvent{Data: p})
	}
	return w.store.Append(ctx, req)
}

// run appends until at least n events are stored and returns them in append order.
func (w *workload) run(ctx context.Context, t testing.TB, n int) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for len(out) < n {
		evs, err := w.step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

// fill appends about n events with several writers at once (for the
// throughput measurement).
func fill(ctx context.Context, t testing.TB, store *eventstore.Store, n, writers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorkload(store, uint64(i)+100)
			for done := 0; done < n/writers; {
				evs, err := w.step(ctx)
				if err != nil {
					errs <- err
					return
				}
				done += len(evs)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// storeFold is the index the store implies: every order folded with the
// aggregate's own Evolve, read in commit-safe order. It returns the
// documents and the highest order position.
func storeFold(t testing.TB, store *eventstore.Store) (map[string]searchdoc.Order, int64, int64) {
	t.Helper()
	states := map[uuid.UUID]order.State{}
	last := map[uuid.UUID]int64{}
	var cur eventstore.Cursor
	var maxPos, n int64
	// ReadAll holds back events behind any write transaction in flight in
	// the cluster (other packages' tests): read until every committed event
	// was returned.
	committed, err := store.CountAfter(context.Background(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen int64
	for deadline := time.Now().Add(time.Minute); seen < committed; {
		batch, next, err := store.ReadAll(context.Background(), cur, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("store returned %d of %d events", seen, committed)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		cur = next
		seen += int64(len(batch))
		for _, e := range batch {
			if e.StreamType != events.StreamOrder {
				continue
			}
			states[e.StreamID] = order.Evolve(states[e.StreamID], e)
			last[e.StreamID] = e.Position
			maxPos = max(maxPos, e.Position)
			n++
		}
	}
	out := make(map[string]searchdoc.Order, len(states))
	for id, s := range states {
		out[id.String()] = docOf(s, last[id])
	}
	return out, maxPos, n
}

// docOf is the document the contract promises for an order state, written
// out field by field.
func docOf(s order.State, lastPosition int64) searchdoc.Order {
	d := searchdoc.Order{OrderID: s.ID.String(), CustomerID: s.CustomerID.String(), Status: string(s.Status), Items: s.Items,
		TotalCents: s.TotalCents, TaxCents: s.TaxCents, Currency: s.Currency, Version: s.Version, LastPosition: lastPosition,
		PlacedAt: s.PlacedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC()}
	for _, it := range s.Items {
		d.ItemNames = append(d.ItemNames, it.Name)
		d.SKUs = append(d.SKUs, it.SKU)
	}
	return d
}

// indexed reads every document behind the alias (after a refresh), with
// its _version checked against its version field.
func (e *env) indexed(t testing.TB) map[string]searchdoc.Order {
	t.Helper()
	ctx := context.Background()
	if _, err := e.es.Refresh(e.names.Alias).Do(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[string]searchdoc.Order{}
	scroll := e.es.Scroll(e.names.Alias).Size(2000).Version(true)
	defer func() { _ = scroll.Clear(ctx) }()
	for {
		res, err := scroll.Do(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("scroll %s: %v", e.names.Alias, err)
		}
		for _, h := range res.Hits.Hits {
			var d searchdoc.Order
			if err := json.Unmarshal(h.Source, &d); err != nil {
				t.Fatal(err)
			}
			if h.Version == nil || *h.Version != d.Version {
				t.Errorf("order %s: _version %v, version field %d", h.Id, h.Version, d.Version)
			}
			out[h.Id] = d
		}
	}
	return out
}

// compareIndex asserts that the index behind the alias is exactly want.
func compareIndex(t testing.TB, got, want map[string]searchdoc.Order) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("index holds %d orders, the store folds to %d", len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			t.Errorf("order %s: not indexed", id)
		case !reflect.DeepEqual(g, w):
			t.Errorf("order %s:\n got %+v\nwant %+v", id, g, w)
		default:
			continue
		}
		if bad++; bad >= 10 {
			t.Fatal("more differences not shown")
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("order %s indexed but not in the store", id)
		}
	}
}

func (e *env) checkpoint(t testing.TB) searchdoc.Checkpoint {
	t.Helper()
	res, err := e.es.Get().Index(e.names.CheckpointIndex).Id(searchdoc.Projection).Do(context.Background())
	if err != nil {
		t.Fatalf("get checkpoint: %v", err)
	}
	var c searchdoc.Checkpoint
	if err := json.Unmarshal(res.Source, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
