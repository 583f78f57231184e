package searchmodel_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// recordedAt gives each position its own instant, so placed_at and
// updated_at show which event they came from.
func recordedAt(pos int64) time.Time { return t0.Add(time.Duration(pos) * time.Minute) }

// fixedNow is the checkpoint clock of the tests.
var fixedNow = time.Date(2026, 4, 2, 9, 30, 0, 123456000, time.UTC)

func newClient(t testing.TB) *elastic.Client {
	t.Helper()
	testenv.RequireElasticsearch(t)
	c, err := elasticclient.NewClient(testenv.ElasticsearchURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// newNames returns index and alias names no other test uses, and deletes
// the indices (and so the alias) when the test ends.
func newNames(t testing.TB, client *elastic.Client) searchmodel.Names {
	t.Helper()
	p := "test-search-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	n := searchmodel.Names{Alias: p, FirstIndex: p + "-v1", CheckpointIndex: p + "-checkpoints"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, idx := range []string{n.FirstIndex, n.CheckpointIndex} {
			if _, err := client.DeleteIndex(idx).Do(ctx); err != nil && !elastic.IsNotFound(err) {
				t.Logf("delete index %s: %v", idx, err)
			}
		}
	})
	return n
}

// setup prepares fresh indices and a model over them.
func setup(t testing.TB, opts ...searchmodel.Option) (*elastic.Client, searchmodel.Names, *searchmodel.Model) {
	t.Helper()
	client := newClient(t)
	names := newNames(t, client)
	if err := searchmodel.EnsureIndices(context.Background(), client, names); err != nil {
		t.Fatal(err)
	}
	opts = append([]searchmodel.Option{searchmodel.WithClock(func() time.Time { return fixedNow })}, opts...)
	return client, names, searchmodel.New(client, names.Alias, names.CheckpointIndex, opts...)
}

func refresh(t testing.TB, client *elastic.Client, names searchmodel.Names) {
	t.Helper()
	if _, err := client.Refresh(names.Alias, names.CheckpointIndex).Do(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// stream builds the envelopes of one stream; positions are set by the caller.
type stream struct {
	typ events.StreamType
	id  uuid.UUID
	n   int64
}

func newStream(typ events.StreamType) *stream { return &stream{typ: typ, id: uuid.New()} }

// next returns the stream's next event at the given global position.
func (s *stream) next(pos int64, p events.Payload) events.Envelope {
	s.n++
	return events.Envelope{
		EventID: uuid.New(), StreamType: s.typ, StreamID: s.id, Version: s.n, Position: pos,
		Type: p.EventType(), SchemaVersion: events.Default.CurrentVersion(p.EventType()),
		OccurredAt: recordedAt(pos).Add(-time.Second), RecordedAt: recordedAt(pos), Data: p,
	}
}

// placedV1 is an OrderPlaced as schema version 1 wrote it (no tax, no
// address), decoded the way the consumer decodes it from Kafka: through the
// registry's upcaster.
func (s *stream) placedV1(t testing.TB, pos int64, customer uuid.UUID, currency string, items []events.LineItem) events.Envelope {
	t.Helper()
	s.n++
	data, err := json.Marshal(map[string]any{"customer_id": customer, "items": items, "currency": currency})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(map[string]any{
		"event_id": uuid.New(), "stream_type": s.typ, "stream_id": s.id, "version": s.n, "position": pos,
		"type": events.TypeOrderPlaced, "schema_version": 1,
		"occurred_at": recordedAt(pos).Add(-time.Second), "recorded_at": recordedAt(pos),
		"data": json.RawMessage(data), "metadata": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var e events.Envelope
	if err := json.Unmarshal(wire, &e); err != nil {
		t.Fatal(err)
	}
	if p, ok := e.Data.(events.OrderPlaced); !ok || p.TaxCents != 0 || p.ShippingAddress != nil {
		t.Fatalf("v1 OrderPlaced decoded as %#v", e.Data)
	}
	return e
}

// getDoc reads one order document and its Elasticsearch _version.
func getDoc(t testing.TB, client *elastic.Client, names searchmodel.Names, id uuid.UUID) (searchdoc.Order, int64, bool) {
	t.Helper()
	res, err := client.Get().Index(names.Alias).Id(id.String()).Do(context.Background())
	if elastic.IsNotFound(err) {
		return searchdoc.Order{}, 0, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	var d searchdoc.Order
	if err := json.Unmarshal(res.Source, &d); err != nil {
		t.Fatal(err)
	}
	return d, *res.Version, true
}

// checkDocs asserts that the index holds exactly want (by order id), each
// document equal field by field and its _version equal to its version.
func checkDocs(t testing.TB, client *elastic.Client, names searchmodel.Names, want map[uuid.UUID]searchdoc.Order) {
	t.Helper()
	refresh(t, client, names)
	for id, w := range want {
		got, version, ok := getDoc(t, client, names, id)
		if !ok {
			t.Errorf("order %s: no document", id)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("order %s:\n got %+v\nwant %+v", id, got, w)
		}
		if version != w.Version {
			t.Errorf("order %s: _version %d, want %d", id, version, w.Version)
		}
	}
	n, err := client.Count(names.Alias).Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Errorf("index holds %d documents, want %d", n, len(want))
	}
}

func getCheckpoint(t testing.TB, client *elastic.Client, names searchmodel.Names) searchdoc.Checkpoint {
	t.Helper()
	res, err := client.Get().Index(names.CheckpointIndex).Id(searchdoc.Projection).Do(context.Background())
	if err != nil {
		t.Fatalf("get checkpoint: %v", err)
	}
	var c searchdoc.Checkpoint
	if err := json.Unmarshal(res.Source, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// search returns the sorted order ids matching q and checks the hit total.
func search(t testing.TB, client *elastic.Client, names searchmodel.Names, q elastic.Query) []string {
	t.Helper()
	res, err := client.Search(names.Alias).Query(q).Size(100).Do(context.Background())
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	ids := make([]string, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		ids = append(ids, h.Id)
	}
	sort.Strings(ids)
	if res.TotalHits() != int64(len(ids)) {
		t.Fatalf("total hits %d, returned %d", res.TotalHits(), len(ids))
	}
	return ids
}

func idsOf(ids ...uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	sort.Strings(out)
	return out
}

func mustApply(t testing.TB, m *searchmodel.Model, evs ...events.Envelope) {
	t.Helper()
	if err := m.Apply(context.Background(), evs); err != nil {
		t.Fatalf("apply %d events: %v", len(evs), err)
	}
}
