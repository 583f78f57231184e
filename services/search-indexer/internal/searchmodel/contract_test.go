package searchmodel_test

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

var (
	lamp   = events.LineItem{SKU: "LAMP-1", Name: "Brass desk lamp", Quantity: 2, UnitPriceCents: 1250}
	bulb   = events.LineItem{SKU: "BULB-9", Name: "LED bulb", Quantity: 3, UnitPriceCents: 199}
	mug    = events.LineItem{SKU: "MUG-42", Name: "Ceramic coffee mug", Quantity: 4, UnitPriceCents: 899}
	desk   = events.LineItem{SKU: "DESK-7", Name: "Standing desk", Quantity: 1, UnitPriceCents: 45000}
	lamp1  = events.LineItem{SKU: "LAMP-1", Name: "Brass desk lamp", Quantity: 1, UnitPriceCents: 1250}
	kettle = events.LineItem{SKU: "KETTLE-3", Name: "Electric kettle", Quantity: 1, UnitPriceCents: 3999}
)

// TestContract applies a realistic mix of order (and account) events and
// checks every document field and the searches the query API relies on.
func TestContract(t *testing.T) {
	t.Parallel()
	client, names, model := setup(t)
	ctx := context.Background()
	c1, c2 := uuid.New(), uuid.New()
	a, b, c, d := newStream(events.StreamOrder), newStream(events.StreamOrder), newStream(events.StreamOrder), newStream(events.StreamOrder)
	acct := newStream(events.StreamAccount)
	addr := &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}

	batch1 := []events.Envelope{
		a.placedV1(t, 101, c1, "EUR", []events.LineItem{lamp, bulb}),
		b.next(102, events.OrderPlaced{CustomerID: c1, Items: []events.LineItem{mug}, Currency: "EUR", ShippingAddress: addr, TaxCents: 300}),
		acct.next(103, events.AccountOpened{Owner: "Ada", InitialBalanceCents: 1000, Currency: "EUR"}),
		c.next(104, events.OrderPlaced{CustomerID: c2, Items: []events.LineItem{desk, lamp1}, Currency: "EUR", TaxCents: 4625}),
		a.next(105, events.OrderPaid{AmountCents: 3097, Method: "card"}),
	}
	batch2 := []events.Envelope{
		d.next(106, events.OrderPlaced{CustomerID: c2, Items: []events.LineItem{kettle}, Currency: "NOK"}),
		b.next(107, events.OrderPaid{AmountCents: 3896, Method: "card"}),
		a.next(108, events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD0001"}),
		c.next(109, events.OrderCancelled{Reason: "changed mind"}),
		acct.next(110, events.FundsDeposited{AmountCents: 500, Source: "bank"}),
	}
	mustApply(t, model, batch1...)
	mustApply(t, model, batch2...)

	want := map[uuid.UUID]searchdoc.Order{
		a.id: {OrderID: a.id.String(), CustomerID: c1.String(), Status: "shipped", Items: []events.LineItem{lamp, bulb},
			ItemNames: []string{"Brass desk lamp", "LED bulb"}, SKUs: []string{"LAMP-1", "BULB-9"},
			TotalCents: 2*1250 + 3*199, TaxCents: 0, Currency: "EUR", Version: 3, LastPosition: 108,
			PlacedAt: recordedAt(101), UpdatedAt: recordedAt(108)},
		b.id: {OrderID: b.id.String(), CustomerID: c1.String(), Status: "paid", Items: []events.LineItem{mug},
			ItemNames: []string{"Ceramic coffee mug"}, SKUs: []string{"MUG-42"},
			TotalCents: 4*899 + 300, TaxCents: 300, Currency: "EUR", Version: 2, LastPosition: 107,
			PlacedAt: recordedAt(102), UpdatedAt: recordedAt(107)},
		c.id: {OrderID: c.id.String(), CustomerID: c2.String(), Status: "cancelled", Items: []events.LineItem{desk, lamp1},
			ItemNames: []string{"Standing desk", "Brass desk lamp"}, SKUs: []string{"DESK-7", "LAMP-1"},
			TotalCents: 45000 + 1250 + 4625, TaxCents: 4625, Currency: "EUR", Version: 2, LastPosition: 109,
			PlacedAt: recordedAt(104), UpdatedAt: recordedAt(109)},
		d.id: {OrderID: d.id.String(), CustomerID: c2.String(), Status: "placed", Items: []events.LineItem{kettle},
			ItemNames: []string{"Electric kettle"}, SKUs: []string{"KETTLE-3"},
			TotalCents: 3999, TaxCents: 0, Currency: "NOK", Version: 1, LastPosition: 106,
			PlacedAt: recordedAt(106), UpdatedAt: recordedAt(106)},
	}
	checkDocs(t, client, names, want)

	wantCP := searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: 110, EventsApplied: 8, UpdatedAt: fixedNow}
	if got := getCheckpoint(t, client, names); !reflect.DeepEqual(got, wantCP) {
		t.Errorf("checkpoint %+v, want %+v", got, wantCP)
	}

	// The account stream never got a document, and the model now treats it
	// as one to skip.
	unknown := uuid.New()
	v, err := model.Versions(ctx, []uuid.UUID{acct.id, a.id, b.id, unknown})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[uuid.UUID]int64{acct.id: math.MaxInt64, a.id: 3, b.id: 2, unknown: 0}; !reflect.DeepEqual(v, want) {
		t.Errorf("versions %v, want %v", v, want)
	}

	tests := []struct {
		name string
		q    elastic.Query
		want []string
	}{
		{"item name word", elastic.NewMatchQuery("item_names", "lamp"), idsOf(a.id, c.id)},
		{"item name phrase in any case", elastic.NewMatchPhraseQuery("item_names", "COFFEE MUG"), idsOf(b.id)},
		{"item name on the nested line", elastic.NewMatchQuery("items.name", "kettle"), idsOf(d.id)},
		{"exact sku", elastic.NewTermQuery("skus", "LAMP-1"), idsOf(a.id, c.id)},
		{"sku text", elastic.NewMatchQuery("skus.text", "mug"), idsOf(b.id)},
		{"status paid", elastic.NewBoolQuery().Filter(elastic.NewTermQuery("status", "paid")), idsOf(b.id)},
		{"status placed", elastic.NewBoolQuery().Filter(elastic.NewTermQuery("status", "placed")), idsOf(d.id)},
		{"customer", elastic.NewBoolQuery().Filter(elastic.NewTermQuery("customer_id", c1.String())), idsOf(a.id, b.id)},
		{"total range", elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("total_cents").Gte(3500).Lte(4000)), idsOf(b.id, d.id)},
		{"total at least", elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("total_cents").Gte(3097)), idsOf(a.id, b.id, c.id, d.id)},
		{"placed_at range", elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("placed_at").Gte(recordedAt(103)).Lte(recordedAt(106))), idsOf(c.id, d.id)},
		{"placed_at before", elastic.NewBoolQuery().Filter(elastic.NewRangeQuery("placed_at").Lt(recordedAt(102))), idsOf(a.id)},
		{"text and filters", elastic.NewBoolQuery().Must(elastic.NewMatchQuery("item_names", "desk")).
			Filter(elastic.NewTermQuery("customer_id", c2.String()), elastic.NewTermQuery("status", "cancelled")), idsOf(c.id)},
		{"no match", elastic.NewMatchQuery("item_names", "bicycle"), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := search(t, client, names, tt.q); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("hits %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEnsureIndices: concurrent start-ups converge on one index behind the
// alias, marked as its write index, with the contract's strict mapping; a
// second call changes nothing.
func TestEnsureIndices(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	names := newNames(t, client)
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- searchmodel.EnsureIndices(ctx, client, names) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := searchmodel.EnsureIndices(ctx, client, names); err != nil {
		t.Fatal(err)
	}
	res, err := client.Aliases().Alias(names.Alias).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.IndicesByAlias(names.Alias); !reflect.DeepEqual(got, []string{names.FirstIndex}) {
		t.Fatalf("alias %s points at %v, want [%s]", names.Alias, got, names.FirstIndex)
	}
	if ai := res.Indices[names.FirstIndex].Aliases; len(ai) != 1 || !ai[0].IsWriteIndex {
		t.Fatalf("alias info %+v, want one write alias", ai)
	}
	mapping, err := client.GetMapping().Index(names.FirstIndex).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := mapping[names.FirstIndex].(map[string]any)["mappings"].(map[string]any)
	if m["dynamic"] != "strict" {
		t.Errorf("dynamic = %v, want strict", m["dynamic"])
	}
	if props := m["properties"].(map[string]any); len(props) != 13 {
		t.Errorf("%d mapped fields, want 13", len(props))
	}
	if ok, err := client.IndexExists(names.CheckpointIndex).Do(ctx); err != nil || !ok {
		t.Fatalf("checkpoint index exists = %v, %v", ok, err)
	}

	// A moved alias (a rebuild swapped in orders-v2) is left where it is.
	v2 := names.Alias + "-v2"
	if _, err := client.CreateIndex(v2).Body(searchdoc.Mapping).Do(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.DeleteIndex(v2).Do(context.Background()) })
	if _, err := client.Alias().Remove(names.FirstIndex, names.Alias).Add(v2, names.Alias).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := searchmodel.EnsureIndices(ctx, client, names); err != nil {
		t.Fatal(err)
	}
	res, err = client.Aliases().Alias(names.Alias).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.IndicesByAlias(names.Alias); !reflect.DeepEqual(got, []string{v2}) {
		t.Fatalf("after a rebuild, alias points at %v, want [%s]", got, v2)
	}
}
