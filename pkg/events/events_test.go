package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	customer := uuid.New()
	payloads := []events.Payload{
		events.AccountOpened{Owner: "ada", InitialBalanceCents: 100, Currency: "EUR"},
		events.FundsDeposited{AmountCents: 5, Source: "card"},
		events.FundsWithdrawn{AmountCents: 3, Reason: "atm"},
		events.AccountClosed{Reason: "done"},
		events.DepositReversed{DepositVersion: 2, AmountCents: 5, Reason: "typo"},
		events.OrderPlaced{CustomerID: customer, Currency: "EUR", TaxCents: 7,
			Items:           []events.LineItem{{SKU: "A-1", Name: "Lamp", Quantity: 2, UnitPriceCents: 1250}},
			ShippingAddress: &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}},
		events.OrderPaid{AmountCents: 2507, Method: "card"},
		events.OrderShipped{Carrier: "DHL", TrackingNumber: "X1"},
		events.OrderCancelled{Reason: "changed mind"},
	}
	for _, p := range payloads {
		t.Run(p.EventType(), func(t *testing.T) {
			in := events.Envelope{
				EventID: uuid.New(), StreamType: events.StreamTypeOf(p.EventType()), StreamID: uuid.New(),
				Version: 3, Position: 42, Type: p.EventType(), SchemaVersion: events.Default.CurrentVersion(p.EventType()),
				OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RecordedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
				Data: p, Metadata: events.Metadata{CorrelationID: "c", Actor: "tester"},
			}
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out events.Envelope
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("round trip changed the envelope:\n in: %+v\nout: %+v", in, out)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		version int
		data    string
		want    error
	}{
		{"unknown type", "OrderTeleported", 1, `{}`, events.ErrUnknownEventType},
		{"schema too new", events.TypeOrderPaid, 2, `{"amount_cents":1}`, events.ErrSchemaTooNew},
		{"schema too new for v2 type", events.TypeOrderPlaced, 3, `{}`, events.ErrSchemaTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := events.Default.Decode(tt.typ, tt.version, json.RawMessage(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Fatalf("payload = %#v, want nil on error", p)
			}
		})
	}
}

func TestUpcastOrderPlacedV1(t *testing.T) {
	customer := uuid.New()
	v1 := `{"customer_id":"` + customer.String() + `","currency":"EUR","items":[{"sku":"A","name":"Lamp","quantity":2,"unit_price_cents":300}]}`
	p, err := events.Default.Decode(events.TypeOrderPlaced, 1, json.RawMessage(v1))
	if err != nil {
		t.Fatal(err)
	}
	got := p.(events.OrderPlaced)
	want := events.OrderPlaced{CustomerID: customer, Currency: "EUR", TaxCents: 0,
		Items: []events.LineItem{{SKU: "A", Name: "Lamp", Quantity: 2, UnitPriceCents: 300}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("upcast v1 = %+v, want %+v", got, want)
	}
	if got.TotalCents() != 600 {
		t.Fatalf("total = %d, want 600", got.TotalCents())
	}
}

func TestCustomRegistryMissingUpcaster(t *testing.T) {
	r := events.NewRegistry()
	events.Register[events.OrderPlaced](r, 2)
	_, err := r.Decode(events.TypeOrderPlaced, 1, json.RawMessage(`{}`))
	if !errors.Is(err, events.ErrNoUpcaster) {
		t.Fatalf("err = %v, want ErrNoUpcaster", err)
	}
}

// BenchmarkDecode compares the registry's payload decoding with
// encoding/json decoding the same payload into the same struct.
func BenchmarkDecode(b *testing.B) {
	data := []byte(`{"amount_cents":100,"source":"bench"}`)
	b.Run("registry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.Default.Decode(events.TypeFundsDeposited, 1, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p events.FundsDeposited
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
