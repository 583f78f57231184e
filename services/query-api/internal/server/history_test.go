package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

func historyJSON(evs ...events.Envelope) []map[string]any {
	out := []map[string]any{}
	for _, e := range evs {
		out = append(out, map[string]any{
			"event_id": e.EventID, "version": e.Version, "position": e.Position, "type": e.Type,
			"schema_version": e.SchemaVersion, "data": e.Data, "recorded_at": e.RecordedAt.UTC(),
			"occurred_at": e.OccurredAt.UTC(),
			"metadata": map[string]any{"correlation_id": e.Metadata.CorrelationID, "causation_id": e.Metadata.CausationID,
				"actor": e.Metadata.Actor, "idempotency_key": e.Metadata.IdempotencyKey, "traceparent": e.Metadata.Traceparent},
		})
	}
	return out
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	orderID, accountID := uuid.New(), uuid.New()
	meta := events.Metadata{CorrelationID: "corr-1", CausationID: "cause-1", Actor: "alice", IdempotencyKey: "idem-1",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	orderEvs := e.appendEvents(t, events.StreamOrder, orderID, meta,
		events.OrderPlaced{CustomerID: uuid.New(), Currency: "EUR", TaxCents: 50,
			Items:           []events.LineItem{{SKU: "A", Name: "Lamp", Quantity: 2, UnitPriceCents: 1000}},
			ShippingAddress: &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}},
		events.OrderPaid{AmountCents: 2050, Method: "card"},
		events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD0001"})
	accEvs := e.appendEvents(t, events.StreamAccount, accountID, events.Metadata{Actor: "bob"},
		events.AccountOpened{Owner: "bob", InitialBalanceCents: 100, Currency: "EUR"},
		events.FundsDeposited{AmountCents: 50, Source: "card"},
		events.FundsWithdrawn{AmountCents: 20, Reason: "atm"},
		events.DepositReversed{DepositVersion: 2, AmountCents: 50, Reason: "typo"},
		events.AccountClosed{Reason: "done"})

	t.Run("whole order stream with metadata", func(t *testing.T) {
		e.get(t, "/v1/orders/"+orderID.String()+"/history").
			expect(t, http.StatusOK, map[string]any{"events": historyJSON(orderEvs...), "next_cursor": nil})
	})
	t.Run("account stream in pages", func(t *testing.T) {
		base := "/v1/accounts/" + accountID.String() + "/history"
		e.get(t, base+"?limit=2").expect(t, http.StatusOK, map[string]any{"events": historyJSON(accEvs[:2]...), "next_cursor": "2"})
		e.get(t, base+"?limit=2&after_version=2").expect(t, http.StatusOK, map[string]any{"events": historyJSON(accEvs[2:4]...), "next_cursor": "4"})
		e.get(t, base+"?limit=2&after_version=4").expect(t, http.StatusOK, map[string]any{"events": historyJSON(accEvs[4:]...), "next_cursor": nil})
		e.get(t, base+"?after_version=5").expect(t, http.StatusOK, map[string]any{"events": []any{}, "next_cursor": nil})
		e.get(t, base+"?limit=5").expect(t, http.StatusOK, map[string]any{"events": historyJSON(accEvs...), "next_cursor": nil})
	})
	t.Run("old schema is upcast", func(t *testing.T) {
		legacy, customer := uuid.New(), uuid.New()
		var pos int64
		err := e.pool.QueryRow(context.Background(), `INSERT INTO events (event_id, stream_type, stream_id, version, type,
			schema_version, data, metadata, occurred_at) VALUES ($1, 'order', $2, 1, 'OrderPlaced', 1,
			jsonb_build_object('customer_id', $3::text, 'currency', 'EUR', 'items',
				jsonb_build_array(jsonb_build_object('sku', 'V1', 'name', 'Old', 'quantity', 1, 'unit_price_cents', 10))),
			'{}', now()) RETURNING position`, uuid.New(), legacy, customer.String()).Scan(&pos)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Events []struct {
				SchemaVersion int            `json:"schema_version"`
				Data          map[string]any `json:"data"`
				Position      int64          `json:"position"`
			} `json:"events"`
		}
		r := e.get(t, "/v1/orders/"+legacy.String()+"/history")
		r.expect(t, http.StatusOK, nil)
		decode(t, r.body, &body)
		if len(body.Events) != 1 || body.Events[0].SchemaVersion != 2 || body.Events[0].Data["tax_cents"] != float64(0) ||
			body.Events[0].Position != pos {
			t.Fatalf("legacy event %s: want schema_version 2 with tax_cents 0", r.body)
		}
	})
	t.Run("unknown stream", func(t *testing.T) {
		e.get(t, "/v1/orders/"+uuid.NewString()+"/history").problem(t, http.StatusNotFound)
		e.get(t, "/v1/accounts/"+uuid.NewString()+"/history?after_version=3").problem(t, http.StatusNotFound)
	})
	t.Run("stream of the other type", func(t *testing.T) {
		e.get(t, "/v1/orders/"+accountID.String()+"/history").problem(t, http.StatusNotFound)
		e.get(t, "/v1/accounts/"+orderID.String()+"/history?after_version=10").problem(t, http.StatusNotFound)
	})
	t.Run("bad parameters", func(t *testing.T) {
		e.get(t, "/v1/orders/"+orderID.String()+"/history?limit=1001").badParams(t, "limit")
		e.get(t, "/v1/orders/"+orderID.String()+"/history?limit=0&after_version=-1").badParams(t, "limit", "after_version")
		e.get(t, "/v1/accounts/nope/history").problem(t, http.StatusBadRequest)
	})
}
