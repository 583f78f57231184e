package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

func TestGetOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	withAddr := orderRow{ID: uuid.New(), CustomerID: uuid.New(), Status: "paid",
		Items:    []events.LineItem{{SKU: "LAMP-1", Name: "Desk lamp", Quantity: 2, UnitPriceCents: 1250}, {SKU: "BULB", Name: "Bulb", Quantity: 1, UnitPriceCents: 300}},
		TaxCents: 560, Total: 3360, Currency: "EUR", Address: &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"},
		Version: 2, PlacedAt: ts("2026-03-01T10:00:00.123456Z"), UpdatedAt: ts("2026-03-01T10:05:00.654321Z")}
	noAddr := orderRow{ID: uuid.New(), CustomerID: uuid.New(), Status: "placed",
		Items: []events.LineItem{{SKU: "A", Name: "Apple", Quantity: 3, UnitPriceCents: 100}}, Total: 300, Currency: "USD",
		Version: 1, PlacedAt: ts("2026-03-02T08:00:00Z"), UpdatedAt: ts("2026-03-02T08:00:00Z")}
	e.putOrder(t, withAddr)
	e.putOrder(t, noAddr)

	t.Run("found", func(t *testing.T) {
		r := e.get(t, "/v1/orders/"+withAddr.ID.String())
		r.expect(t, http.StatusOK, orderJSON(withAddr))
		if got := r.header.Get("ETag"); got != `"2"` {
			t.Fatalf("ETag %q, want \"2\"", got)
		}
		e.get(t, "/v1/orders/"+noAddr.ID.String()).expect(t, http.StatusOK, orderJSON(noAddr))
	})
	t.Run("if-none-match", func(t *testing.T) {
		r := e.get(t, "/v1/orders/"+withAddr.ID.String(), "If-None-Match", `"2"`)
		if r.status != http.StatusNotModified || len(r.body) != 0 {
			t.Fatalf("status %d body %q, want 304 and no body", r.status, r.body)
		}
		e.get(t, "/v1/orders/"+withAddr.ID.String(), "If-None-Match", `"1"`).expect(t, http.StatusOK, orderJSON(withAddr))
	})
	t.Run("unknown", func(t *testing.T) {
		p := e.get(t, "/v1/orders/"+uuid.NewString()).problem(t, http.StatusNotFound)
		if p.Detail != "no such order" {
			t.Fatalf("detail %q", p.Detail)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		p := e.get(t, "/v1/orders/not-a-uuid").problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, "path parameter id") || len(p.Errors) != 1 || p.Errors[0].Field != "id" {
			t.Fatalf("problem %+v does not name the id parameter", p)
		}
	})
	t.Run("min_version already reached", func(t *testing.T) {
		start := time.Now()
		e.get(t, "/v1/orders/"+withAddr.ID.String()+"?min_version=2").expect(t, http.StatusOK, orderJSON(withAddr))
		e.get(t, "/v1/orders/"+withAddr.ID.String()+"?min_version=1&wait=1h").expect(t, http.StatusOK, orderJSON(withAddr))
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a satisfied min_version waited %s", d)
		}
	})
	t.Run("min_version times out", func(t *testing.T) {
		start := time.Now()
		r := e.get(t, "/v1/orders/"+withAddr.ID.String()+"?min_version=5&wait=150ms")
		r.expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 2, "min_version": 5})
		if r.header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q, want 1", r.header.Get("Retry-After"))
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
			t.Fatalf("waited %s, want about 150ms", d)
		}
	})
	t.Run("min_version of a missing order times out", func(t *testing.T) {
		r := e.get(t, "/v1/orders/"+uuid.NewString()+"?min_version=1&wait=50ms")
		r.expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 0, "min_version": 1})
	})
	t.Run("min_version default wait is READ_WAIT", func(t *testing.T) {
		cfg := e.cfg
		cfg.ReadWait = 300 * time.Millisecond
		url := e.serve(t, cfg)
		start := time.Now()
		get(t, url+"/v1/orders/"+withAddr.ID.String()+"?min_version=3").
			expect(t, http.StatusAccepted, map[string]any{"status": "pending", "version": 2, "min_version": 3})
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Fatalf("waited %s, want about READ_WAIT=300ms", d)
		}
	})
	t.Run("min_version reached by a concurrent write", func(t *testing.T) {
		late := orderRow{ID: uuid.New(), CustomerID: uuid.New(), Status: "placed",
			Items: []events.LineItem{{SKU: "X", Name: "Thing", Quantity: 1, UnitPriceCents: 999}}, Total: 999, Currency: "EUR",
			Version: 1, PlacedAt: ts("2026-03-03T08:00:00Z"), UpdatedAt: ts("2026-03-03T08:00:00Z")}
		type result struct {
			r       response
			elapsed time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			// The order does not exist yet: the read must wait for it to
			// appear and then for it to reach version 3.
			r := get(t, e.url+"/v1/orders/"+late.ID.String()+"?min_version=3&wait=8s")
			done <- result{r, time.Since(start)}
		}()
		time.Sleep(200 * time.Millisecond)
		e.putOrder(t, late)
		time.Sleep(200 * time.Millisecond)
		late.Status, late.Version, late.UpdatedAt = "shipped", 3, ts("2026-03-03T09:00:00Z")
		if _, err := e.pool.Exec(context.Background(), `UPDATE orders_view SET status = $2, version = $3, updated_at = $4
			WHERE order_id = $1`, late.ID, late.Status, late.Version, late.UpdatedAt); err != nil {
			t.Fatal(err)
		}
		res := <-done
		res.r.expect(t, http.StatusOK, orderJSON(late))
		if res.elapsed < 400*time.Millisecond || res.elapsed > 5*time.Second {
			t.Fatalf("answered after %s: want after the write (400ms) and well before the 8s wait", res.elapsed)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		id := withAddr.ID.String()
		e.get(t, "/v1/orders/"+id+"?min_version=0").badParams(t, "min_version")
		e.get(t, "/v1/orders/"+id+"?min_version=x&wait=soon").badParams(t, "min_version", "wait")
		e.get(t, "/v1/orders/"+id+"?wait=-1s").badParams(t, "wait")
		e.get(t, "/v1/orders/"+id+"?version=1&min_version=1").badParams(t, "min_version")
	})
}

func TestCustomerOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	customer, other := uuid.New(), uuid.New()
	base := ts("2026-04-01T12:00:00Z")
	var rows []orderRow
	for i := range 7 {
		placed := base.Add(time.Duration(i) * time.Minute)
		if i == 5 {
			placed = rows[4].PlacedAt // a tie on placed_at: order_id breaks it
		}
		o := orderRow{ID: uuid.New(), CustomerID: customer, Status: "placed",
			Items: []events.LineItem{{SKU: "S" + string(rune('A'+i)), Name: "Item", Quantity: int64(i + 1), UnitPriceCents: 100}},
			Total: int64(i+1) * 100, Currency: "EUR", Version: 1, PlacedAt: placed, UpdatedAt: placed}
		rows = append(rows, o)
		e.putOrder(t, o)
	}
	e.putOrder(t, orderRow{ID: uuid.New(), CustomerID: other, Status: "placed", Items: []events.LineItem{}, Currency: "EUR",
		Version: 1, PlacedAt: base.Add(time.Hour), UpdatedAt: base.Add(time.Hour)})

	// Expected order: placed_at DESC, order_id DESC.
	want := []orderRow{rows[6]}
	a, b := rows[4], rows[5]
	if a.ID.String() < b.ID.String() {
		a, b = b, a
	}
	want = append(want, a, b, rows[3], rows[2], rows[1], rows[0])

	t.Run("pages", func(t *testing.T) {
		var got []string
		cursor := ""
		pages := 0
		for {
			path := "/v1/customers/" + customer.String() + "/orders?limit=3"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var pg struct {
				Items []map[string]any `json:"items"`
				Next  *string          `json:"next_cursor"`
			}
			r := e.get(t, path)
			r.expect(t, http.StatusOK, nil)
			decode(t, r.body, &pg)
			pages++
			start := len(got)
			for _, it := range pg.Items {
				got = append(got, it["order_id"].(string))
			}
			// Every item is the full order shape.
			end := min(start+3, len(want))
			wantPage := make([]map[string]any, 0, 3)
			for _, o := range want[start:end] {
				wantPage = append(wantPage, orderJSON(o))
			}
			assertJSON(t, mustJSON(t, pg.Items), wantPage)
			if pg.Next == nil {
				break
			}
			cursor = *pg.Next
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if pages != 3 {
			t.Fatalf("%d pages, want 3", pages)
		}
		var wantIDs []string
		for _, o := range want {
			wantIDs = append(wantIDs, o.ID.String())
		}
		if strings.Join(got, ",") != strings.Join(wantIDs, ",") {
			t.Fatalf("order ids\n got %v\nwant %v", got, wantIDs)
		}
	})
	t.Run("exact page boundary has no next cursor", func(t *testing.T) {
		var pg struct {
			Items []map[string]any `json:"items"`
			Next  *string          `json:"next_cursor"`
		}
		r := e.get(t, "/v1/customers/"+customer.String()+"/orders?limit=7")
		r.expect(t, http.StatusOK, nil)
		decode(t, r.body, &pg)
		if len(pg.Items) != 7 || pg.Next != nil {
			t.Fatalf("%d items, next %v: want 7 and null", len(pg.Items), pg.Next)
		}
	})
	t.Run("default limit", func(t *testing.T) {
		var pg struct {
			Items []map[string]any `json:"items"`
		}
		r := e.get(t, "/v1/customers/"+customer.String()+"/orders")
		r.expect(t, http.StatusOK, nil)
		decode(t, r.body, &pg)
		if len(pg.Items) != 7 {
			t.Fatalf("%d items, want all 7", len(pg.Items))
		}
	})
	t.Run("unknown customer", func(t *testing.T) {
		e.get(t, "/v1/customers/"+uuid.NewString()+"/orders").
			expect(t, http.StatusOK, map[string]any{"items": []any{}, "next_cursor": nil})
	})
	t.Run("bad parameters", func(t *testing.T) {
		p := "/v1/customers/" + customer.String() + "/orders"
		e.get(t, p+"?cursor=!!!").badParams(t, "cursor")
		e.get(t, p+"?cursor=bm90LWEtY3Vyc29y").badParams(t, "cursor") // base64url of "not-a-cursor"
		e.get(t, p+"?limit=0").badParams(t, "limit")
		e.get(t, p+"?limit=101&cursor=x").badParams(t, "limit", "cursor")
		e.get(t, "/v1/customers/nope/orders").problem(t, http.StatusBadRequest)
	})
}
