package server_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
)

func (e *env) indexOrder(t *testing.T, d searchdoc.Order) {
	t.Helper()
	for _, it := range d.Items {
		d.ItemNames = append(d.ItemNames, it.Name)
		d.SKUs = append(d.SKUs, it.SKU)
	}
	if _, err := e.es.Index().Index(e.cfg.SearchAlias).Id(d.OrderID).BodyJson(d).Refresh("true").Do(context.Background()); err != nil {
		t.Fatalf("index %s: %v", d.OrderID, err)
	}
}

func docJSON(d searchdoc.Order) map[string]any {
	return map[string]any{
		"order_id": d.OrderID, "customer_id": d.CustomerID, "status": d.Status, "items": d.Items,
		"tax_cents": d.TaxCents, "total_cents": d.TotalCents, "currency": d.Currency, "version": d.Version,
		"placed_at": d.PlacedAt, "updated_at": d.UpdatedAt,
	}
}

type searchBody struct {
	Items []map[string]any `json:"items"`
	Next  *string          `json:"next_cursor"`
	Total int64            `json:"total"`
}

func TestSearchOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	custA, custB, custC := uuid.NewString(), uuid.NewString(), uuid.NewString()
	doc := func(customer, status string, total int64, placed string, items ...events.LineItem) searchdoc.Order {
		p := ts(placed)
		return searchdoc.Order{OrderID: uuid.NewString(), CustomerID: customer, Status: status, Items: items,
			TotalCents: total, TaxCents: total / 10, Currency: "EUR", Version: 2, LastPosition: 7,
			PlacedAt: p, UpdatedAt: p.Add(time.Minute)}
	}
	d1 := doc(custA, "paid", 2750, "2026-07-01T10:00:00.100Z", events.LineItem{SKU: "LAMP-1", Name: "Desk lamp", Quantity: 2, UnitPriceCents: 1250})
	d2 := doc(custA, "placed", 19900, "2026-07-02T10:00:00Z", events.LineItem{SKU: "TBL-9", Name: "Oak table", Quantity: 1, UnitPriceCents: 18000})
	d3 := doc(custB, "shipped", 5000, "2026-07-03T10:00:00Z",
		events.LineItem{SKU: "SHADE-2", Name: "Lamp shade", Quantity: 1, UnitPriceCents: 3500},
		events.LineItem{SKU: "BULB-60", Name: "Bulb", Quantity: 3, UnitPriceCents: 500})
	d4 := doc(custB, "cancelled", 8000, "2026-07-03T10:00:00Z", events.LineItem{SKU: "LAMP-2", Name: "Floor lamp", Quantity: 1, UnitPriceCents: 8000})
	d5 := doc(custC, "paid", 4500, "2026-07-05T08:00:00Z", events.LineItem{SKU: "CHR-1", Name: "Chair", Quantity: 1, UnitPriceCents: 4500})
	for _, d := range []searchdoc.Order{d1, d2, d3, d4, d5} {
		e.indexOrder(t, d)
	}
	// d3 and d4 share placed_at: order_id DESC breaks the tie.
	tieHi, tieLo := d3, d4
	if tieLo.OrderID > tieHi.OrderID {
		tieHi, tieLo = tieLo, tieHi
	}
	all := []searchdoc.Order{d5, tieHi, tieLo, d2, d1}
	inOrder := func(ds ...searchdoc.Order) []searchdoc.Order {
		rank := map[string]int{}
		for i, d := range all {
			rank[d.OrderID] = i
		}
		out := append([]searchdoc.Order(nil), ds...)
		sort.Slice(out, func(i, j int) bool { return rank[out[i].OrderID] < rank[out[j].OrderID] })
		return out
	}

	tests := []struct {
		name  string
		query url.Values
		want  []searchdoc.Order
	}{
		{"everything", url.Values{}, all},
		{"item name", url.Values{"q": {"lamp"}}, inOrder(d1, d3, d4)},
		{"two words must both match", url.Values{"q": {"lamp shade"}}, inOrder(d3)},
		{"words across name and sku", url.Values{"q": {"lamp LAMP-1"}}, inOrder(d1)},
		{"sku", url.Values{"q": {"LAMP-1"}}, inOrder(d1)},
		{"second item's sku", url.Values{"q": {"bulb-60"}}, inOrder(d3)},
		{"no match", url.Values{"q": {"sofa"}}, nil},
		{"status", url.Values{"status": {"paid"}}, inOrder(d1, d5)},
		{"customer", url.Values{"customer_id": {custB}}, inOrder(d3, d4)},
		{"min total", url.Values{"min_total_cents": {"5000"}}, inOrder(d2, d3, d4)},
		{"max total", url.Values{"max_total_cents": {"4500"}}, inOrder(d1, d5)},
		{"total range", url.Values{"min_total_cents": {"4500"}, "max_total_cents": {"8000"}}, inOrder(d3, d4, d5)},
		{"from", url.Values{"from": {"2026-07-03T10:00:00Z"}}, inOrder(d3, d4, d5)},
		{"to", url.Values{"to": {"2026-07-02T10:00:00Z"}}, inOrder(d1, d2)},
		{"from and to with offset", url.Values{"from": {"2026-07-01T12:00:00+02:00"}, "to": {"2026-07-03T09:59:59Z"}}, inOrder(d1, d2)},
		{"everything combined", url.Values{"q": {"lamp"}, "customer_id": {custB}, "status": {"cancelled"},
			"min_total_cents": {"1"}, "from": {"2026-07-01T00:00:00Z"}, "to": {"2026-07-31T00:00:00Z"}}, inOrder(d4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[string]any{"items": []any{}, "next_cursor": nil, "total": len(tt.want)}
			var items []map[string]any
			for _, d := range tt.want {
				items = append(items, docJSON(d))
			}
			if items != nil {
				want["items"] = items
			}
			e.get(t, "/v1/search/orders?"+tt.query.Encode()).expect(t, http.StatusOK, want)
		})
	}

	t.Run("pages with search_after", func(t *testing.T) {
		var got []string
		cursor, pages := "", 0
		for {
			q := url.Values{"limit": {"2"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var body searchBody
			r := e.get(t, "/v1/search/orders?"+q.Encode())
			r.expect(t, http.StatusOK, nil)
			decode(t, r.body, &body)
			if body.Total != 5 {
				t.Fatalf("page %d: total %d, want 5", pages, body.Total)
			}
			for _, it := range body.Items {
				got = append(got, it["order_id"].(string))
			}
			pages++
			if body.Next == nil {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			cursor = *body.Next
		}
		var want []string
		for _, d := range all {
			want = append(want, d.OrderID)
		}
		if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%d pages of %v, want 3 pages of %v", pages, got, want)
		}
	})
	t.Run("filtered pages keep the filter's total", func(t *testing.T) {
		var body searchBody
		r := e.get(t, "/v1/search/orders?q=lamp&limit=1")
		decode(t, r.body, &body)
		if body.Total != 3 || len(body.Items) != 1 || body.Items[0]["order_id"] != tieHi.OrderID || body.Next == nil {
			t.Fatalf("first page %+v", body)
		}
		r = e.get(t, "/v1/search/orders?q=lamp&limit=5&cursor="+url.QueryEscape(*body.Next))
		body = searchBody{}
		decode(t, r.body, &body)
		var got []string
		for _, it := range body.Items {
			got = append(got, it["order_id"].(string))
		}
		if body.Total != 3 || body.Next != nil || strings.Join(got, ",") != tieLo.OrderID+","+d1.OrderID {
			t.Fatalf("second page %+v", body)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/search/orders?status=lost").badParams(t, "status")
		e.get(t, "/v1/search/orders?customer_id=bob&from=monday&to=2026-13-01T00:00:00Z&limit=0").
			badParams(t, "customer_id", "from", "to", "limit")
		e.get(t, "/v1/search/orders?min_total_cents=-1&max_total_cents=abc").badParams(t, "min_total_cents", "max_total_cents")
		e.get(t, "/v1/search/orders?min_total_cents=10&max_total_cents=9").badParams(t, "max_total_cents")
		e.get(t, "/v1/search/orders?from=2026-07-02T00:00:00Z&to=2026-07-01T00:00:00Z").badParams(t, "to")
		e.get(t, "/v1/search/orders?cursor=WzEsMl0").badParams(t, "cursor") // [1,2]: order id not a string
		e.get(t, "/v1/search/orders?q="+strings.Repeat("x", 501)).badParams(t, "q")
	})
	t.Run("missing index is an empty result", func(t *testing.T) {
		cfg := e.cfg
		cfg.SearchAlias = e.index + "-absent"
		get(t, e.serve(t, cfg)+"/v1/search/orders?q=lamp").
			expect(t, http.StatusOK, map[string]any{"items": []any{}, "next_cursor": nil, "total": 0})
	})
}
