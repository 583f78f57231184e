package order_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/pkg/events"
)

var (
	streamID = uuid.MustParse("0b7a4d0e-5f0c-4d43-8a0e-7e8d2c1f9a10")
	customer = uuid.MustParse("c5d9a1a2-2b3c-4d5e-8f90-123456789abc")
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func recordedAt(v int64) time.Time { return t0.Add(time.Duration(v) * time.Hour) }

func envs(ps ...events.Payload) []events.Envelope {
	out := make([]events.Envelope, len(ps))
	for i, p := range ps {
		v := int64(i + 1)
		out[i] = events.Envelope{
			StreamType: events.StreamOrder, StreamID: streamID, Version: v, Position: 500 + v,
			Type: p.EventType(), SchemaVersion: events.Default.CurrentVersion(p.EventType()),
			OccurredAt: recordedAt(v).Add(-time.Second), RecordedAt: recordedAt(v), Data: p,
		}
	}
	return out
}

func stateOf(ps ...events.Payload) order.State { return order.Fold(order.State{}, envs(ps...)) }

func items() []events.LineItem {
	return []events.LineItem{
		{SKU: "LAMP-1", Name: "Lamp", Quantity: 2, UnitPriceCents: 1250},
		{SKU: "BULB-9", Name: "Bulb", Quantity: 3, UnitPriceCents: 199},
	}
}

func address() *events.Address {
	return &events.Address{Line1: "1 Main St", City: "Oslo", PostalCode: "0150", Country: "NO"}
}

// placed: 2*1250 + 3*199 + 300 tax = 3397.
const total = 2*1250 + 3*199 + 300

func placedEvent() events.OrderPlaced {
	return events.OrderPlaced{CustomerID: customer, Items: items(), Currency: "EUR", ShippingAddress: address(), TaxCents: 300}
}

var (
	paidEvent      = events.OrderPaid{AmountCents: total, Method: "card"}
	shippedEvent   = events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD0001"}
	cancelledEvent = events.OrderCancelled{Reason: "changed mind"}
)

func validPlace() order.Place {
	return order.Place{CustomerID: customer, Items: items(), Currency: "EUR", ShippingAddress: address(), TaxCents: 300}
}

// checkResult: wantFields != nil means a *ValidationError on exactly those
// fields; wantErr != nil means errors.Is(err, wantErr); otherwise success
// with exactly wantEvents.
func checkResult(t *testing.T, got []events.Payload, err error, wantEvents []events.Payload, wantErr error, wantFields []string) {
	t.Helper()
	switch {
	case wantFields != nil:
		var ve *domain.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v (%T), want *domain.ValidationError on %q", err, err, wantFields)
		}
		fields := make([]string, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = f.Field
			if f.Message == "" {
				t.Errorf("field %q has an empty message", f.Field)
			}
		}
		if !reflect.DeepEqual(fields, wantFields) {
			t.Fatalf("invalid fields = %q, want %q", fields, wantFields)
		}
		if errors.Is(err, domain.ErrRuleViolation) || errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("validation error %v also matches a rule violation / not found", err)
		}
	case wantErr != nil:
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			t.Fatalf("err = %v is a validation error, want %v", err, wantErr)
		}
		if isRule := errors.Is(err, domain.ErrRuleViolation); isRule == (wantErr == domain.ErrNotFound) {
			t.Fatalf("errors.Is(%v, ErrRuleViolation) = %v", err, isRule)
		}
	default:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if !reflect.DeepEqual(got, wantEvents) {
			t.Fatalf("events = %#v, want %#v", got, wantEvents)
		}
		return
	}
	if got != nil {
		t.Fatalf("events = %#v, want nil alongside an error", got)
	}
}

// TestTransitions runs every command against every status.
func TestTransitions(t *testing.T) {
	placed := []events.Payload{placedEvent()}
	paid := append(append([]events.Payload{}, placed...), paidEvent)
	statuses := []struct {
		name   string
		events []events.Payload
		status order.Status
	}{
		{"placed", placed, order.StatusPlaced},
		{"paid", paid, order.StatusPaid},
		{"shipped", append(append([]events.Payload{}, paid...), shippedEvent), order.StatusShipped},
		{"cancelled from placed", append(append([]events.Payload{}, placed...), cancelledEvent), order.StatusCancelled},
		{"cancelled from paid", append(append([]events.Payload{}, paid...), cancelledEvent), order.StatusCancelled},
	}
	type command struct {
		name   string
		decide func(order.State) ([]events.Payload, error)
		ok     []events.Payload // the events on success
	}
	commands := []command{
		{"place", func(s order.State) ([]events.Payload, error) { return order.DecidePlace(s, validPlace()) }, nil},
		{"pay", func(s order.State) ([]events.Payload, error) {
			return order.DecidePay(s, order.Pay{AmountCents: total, Method: "card"})
		}, []events.Payload{events.OrderPaid{AmountCents: total, Method: "card"}}},
		{"ship", func(s order.State) ([]events.Payload, error) {
			return order.DecideShip(s, order.Ship{Carrier: "UPS", TrackingNumber: "1Z999"})
		}, []events.Payload{events.OrderShipped{Carrier: "UPS", TrackingNumber: "1Z999"}}},
		{"cancel", func(s order.State) ([]events.Payload, error) {
			return order.DecideCancel(s, order.Cancel{Reason: "late"})
		},
			[]events.Payload{events.OrderCancelled{Reason: "late"}}},
	}
	// allowed[status][command]: nil = ok, else the expected error.
	tr := domain.ErrInvalidTransition
	exists := domain.ErrAlreadyExists
	allowed := map[string]map[string]error{
		"placed":                {"place": exists, "pay": nil, "ship": tr, "cancel": nil},
		"paid":                  {"place": exists, "pay": tr, "ship": nil, "cancel": nil},
		"shipped":               {"place": exists, "pay": tr, "ship": tr, "cancel": tr},
		"cancelled from placed": {"place": exists, "pay": tr, "ship": tr, "cancel": tr},
		"cancelled from paid":   {"place": exists, "pay": tr, "ship": tr, "cancel": tr},
	}
	for _, st := range statuses {
		s := stateOf(st.events...)
		if s.Status != st.status {
			t.Fatalf("setup %s: status %q, want %q", st.name, s.Status, st.status)
		}
		for _, c := range commands {
			t.Run(st.name+"/"+c.name, func(t *testing.T) {
				wantErr, ok := allowed[st.name][c.name]
				if !ok {
					t.Fatal("missing from the transition table")
				}
				got, err := c.decide(s)
				if wantErr == nil {
					checkResult(t, got, err, c.ok, nil, nil)
				} else {
					checkResult(t, got, err, nil, wantErr, nil)
				}
			})
		}
	}
}

// TestZeroState: every command but Place is refused on a stream with no events.
func TestZeroState(t *testing.T) {
	var zero order.State
	if zero.Exists() {
		t.Fatal("zero state exists")
	}
	tests := []struct {
		name       string
		decide     func() ([]events.Payload, error)
		want       []events.Payload
		wantErr    error
		wantFields []string
	}{
		{name: "place", decide: func() ([]events.Payload, error) { return order.DecidePlace(zero, validPlace()) },
			want: []events.Payload{placedEvent()}},
		{name: "pay", decide: func() ([]events.Payload, error) {
			return order.DecidePay(zero, order.Pay{AmountCents: 1, Method: "card"})
		}, wantErr: domain.ErrNotFound},
		{name: "ship", decide: func() ([]events.Payload, error) {
			return order.DecideShip(zero, order.Ship{Carrier: "DHL", TrackingNumber: "1"})
		}, wantErr: domain.ErrNotFound},
		{name: "cancel", decide: func() ([]events.Payload, error) { return order.DecideCancel(zero, order.Cancel{}) }, wantErr: domain.ErrNotFound},
		// Input is validated before the stream is looked at.
		{name: "invalid pay", decide: func() ([]events.Payload, error) { return order.DecidePay(zero, order.Pay{}) }, wantFields: []string{"amount_cents", "method"}},
		{name: "invalid ship", decide: func() ([]events.Payload, error) { return order.DecideShip(zero, order.Ship{}) }, wantFields: []string{"carrier", "tracking_number"}},
		{name: "invalid cancel", decide: func() ([]events.Payload, error) {
			return order.DecideCancel(zero, order.Cancel{Reason: strings.Repeat("r", 201)})
		}, wantFields: []string{"reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide()
			checkResult(t, got, err, tt.want, tt.wantErr, tt.wantFields)
		})
	}
}

func TestDecidePlace(t *testing.T) {
	maxItems := make([]events.LineItem, order.MaxItems)
	for i := range maxItems {
		maxItems[i] = events.LineItem{SKU: "S", Name: "N", Quantity: 1, UnitPriceCents: 1}
	}
	tooMany := append(append([]events.LineItem{}, maxItems...), maxItems[0])
	with := func(f func(*order.Place)) order.Place {
		c := validPlace()
		f(&c)
		return c
	}
	withItem := func(i int, f func(*events.LineItem)) order.Place {
		return with(func(c *order.Place) { f(&c.Items[i]) })
	}
	tests := []struct {
		name       string
		state      order.State
		cmd        order.Place
		want       []events.Payload
		wantErr    error
		wantFields []string
	}{
		{name: "ok", cmd: validPlace(), want: []events.Payload{placedEvent()}},
		{name: "no address, no tax", cmd: with(func(c *order.Place) { c.ShippingAddress, c.TaxCents = nil, 0 }),
			want: []events.Payload{events.OrderPlaced{CustomerID: customer, Items: items(), Currency: "EUR"}}},
		{name: "max items", cmd: with(func(c *order.Place) { c.Items = maxItems }),
			want: []events.Payload{events.OrderPlaced{CustomerID: customer, Items: maxItems, Currency: "EUR", ShippingAddress: address(), TaxCents: 300}}},
		{name: "boundary values", cmd: with(func(c *order.Place) {
			c.Items = []events.LineItem{{SKU: strings.Repeat("s", 64), Name: strings.Repeat("n", 200), Quantity: 10_000, UnitPriceCents: 100_000_000}, {SKU: "F", Name: "Free", Quantity: 1, UnitPriceCents: 0}}
		}), want: []events.Payload{events.OrderPlaced{CustomerID: customer, Currency: "EUR", ShippingAddress: address(), TaxCents: 300,
			Items: []events.LineItem{{SKU: strings.Repeat("s", 64), Name: strings.Repeat("n", 200), Quantity: 10_000, UnitPriceCents: 100_000_000}, {SKU: "F", Name: "Free", Quantity: 1, UnitPriceCents: 0}}}}},
		{name: "nil customer", cmd: with(func(c *order.Place) { c.CustomerID = uuid.Nil }), wantFields: []string{"customer_id"}},
		{name: "bad currency", cmd: with(func(c *order.Place) { c.Currency = "eur" }), wantFields: []string{"currency"}},
		{name: "no items", cmd: with(func(c *order.Place) { c.Items = nil }), wantFields: []string{"items"}},
		{name: "too many items", cmd: with(func(c *order.Place) { c.Items = tooMany }), wantFields: []string{"items"}},
		{name: "negative tax", cmd: with(func(c *order.Place) { c.TaxCents = -1 }), wantFields: []string{"tax_cents"}},
		{name: "largest tax that fits", cmd: with(func(c *order.Place) { c.TaxCents = math.MaxInt64 - (total - 300) }),
			want: []events.Payload{events.OrderPlaced{CustomerID: customer, Items: items(), Currency: "EUR", ShippingAddress: address(), TaxCents: math.MaxInt64 - (total - 300)}}},
		{name: "tax that overflows the total", cmd: with(func(c *order.Place) { c.TaxCents = math.MaxInt64 }), wantFields: []string{"tax_cents"}},
		{name: "empty sku", cmd: withItem(0, func(it *events.LineItem) { it.SKU = "" }), wantFields: []string{"items[0].sku"}},
		{name: "sku too long", cmd: withItem(1, func(it *events.LineItem) { it.SKU = strings.Repeat("s", 65) }), wantFields: []string{"items[1].sku"}},
		{name: "empty name", cmd: withItem(1, func(it *events.LineItem) { it.Name = "" }), wantFields: []string{"items[1].name"}},
		{name: "name too long", cmd: withItem(0, func(it *events.LineItem) { it.Name = strings.Repeat("n", 201) }), wantFields: []string{"items[0].name"}},
		{name: "zero quantity", cmd: withItem(0, func(it *events.LineItem) { it.Quantity = 0 }), wantFields: []string{"items[0].quantity"}},
		{name: "negative quantity", cmd: withItem(1, func(it *events.LineItem) { it.Quantity = -3 }), wantFields: []string{"items[1].quantity"}},
		{name: "quantity too large", cmd: withItem(0, func(it *events.LineItem) { it.Quantity = 10_001 }), wantFields: []string{"items[0].quantity"}},
		{name: "negative price", cmd: withItem(0, func(it *events.LineItem) { it.UnitPriceCents = -1 }), wantFields: []string{"items[0].unit_price_cents"}},
		{name: "price too large", cmd: withItem(1, func(it *events.LineItem) { it.UnitPriceCents = 100_000_001 }), wantFields: []string{"items[1].unit_price_cents"}},
		{name: "every field of an item", cmd: withItem(1, func(it *events.LineItem) { *it = events.LineItem{Quantity: 0, UnitPriceCents: -1} }),
			wantFields: []string{"items[1].sku", "items[1].name", "items[1].quantity", "items[1].unit_price_cents"}},
		{name: "empty address line", cmd: with(func(c *order.Place) { c.ShippingAddress.Line1 = "" }), wantFields: []string{"shipping_address.line1"}},
		{name: "empty address city", cmd: with(func(c *order.Place) { c.ShippingAddress.City = "" }), wantFields: []string{"shipping_address.city"}},
		{name: "three-letter country", cmd: with(func(c *order.Place) { c.ShippingAddress.Country = "NOR" }), wantFields: []string{"shipping_address.country"}},
		{name: "empty address", cmd: with(func(c *order.Place) { c.ShippingAddress = &events.Address{} }),
			wantFields: []string{"shipping_address.line1", "shipping_address.city", "shipping_address.country"}},
		{name: "everything invalid, in order", cmd: order.Place{
			Currency: "EURO", TaxCents: -5,
			Items:           []events.LineItem{{SKU: "ok", Name: "ok", Quantity: 1, UnitPriceCents: 1}, {SKU: "", Name: "x", Quantity: 0, UnitPriceCents: 1}},
			ShippingAddress: &events.Address{Line1: "x", City: "", Country: "N"},
		}, wantFields: []string{"customer_id", "currency", "tax_cents", "items[1].sku", "items[1].quantity", "shipping_address.city", "shipping_address.country"}},
		{name: "already exists", state: stateOf(placedEvent()), cmd: validPlace(), wantErr: domain.ErrAlreadyExists},
		{name: "validation before existence", state: stateOf(placedEvent()), cmd: with(func(c *order.Place) { c.Currency = "" }), wantFields: []string{"currency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := order.DecidePlace(tt.state, tt.cmd)
			checkResult(t, got, err, tt.want, tt.wantErr, tt.wantFields)
		})
	}
}

func TestDecidePay(t *testing.T) {
	placed := stateOf(placedEvent())
	tests := []struct {
		name       string
		state      order.State
		cmd        order.Pay
		want       []events.Payload
		wantErr    error
		wantFields []string
	}{
		{name: "exact total including tax", state: placed, cmd: order.Pay{AmountCents: total, Method: "card"},
			want: []events.Payload{events.OrderPaid{AmountCents: total, Method: "card"}}},
		{name: "method of 50 chars", state: placed, cmd: order.Pay{AmountCents: total, Method: strings.Repeat("m", 50)},
			want: []events.Payload{events.OrderPaid{AmountCents: total, Method: strings.Repeat("m", 50)}}},
		{name: "total without tax", state: placed, cmd: order.Pay{AmountCents: total - 300, Method: "card"}, wantFields: []string{"amount_cents"}},
		{name: "one cent short", state: placed, cmd: order.Pay{AmountCents: total - 1, Method: "card"}, wantFields: []string{"amount_cents"}},
		{name: "one cent over", state: placed, cmd: order.Pay{AmountCents: total + 1, Method: "card"}, wantFields: []string{"amount_cents"}},
		{name: "zero amount", state: placed, cmd: order.Pay{AmountCents: 0, Method: "card"}, wantFields: []string{"amount_cents"}},
		{name: "negative amount", state: placed, cmd: order.Pay{AmountCents: -total, Method: "card"}, wantFields: []string{"amount_cents"}},
		{name: "empty method", state: placed, cmd: order.Pay{AmountCents: total}, wantFields: []string{"method"}},
		{name: "method too long", state: placed, cmd: order.Pay{AmountCents: total, Method: strings.Repeat("m", 51)}, wantFields: []string{"method"}},
		{name: "both invalid", state: placed, cmd: order.Pay{}, wantFields: []string{"amount_cents", "method"}},
		{name: "status is checked before the amount", state: stateOf(placedEvent(), paidEvent), cmd: order.Pay{AmountCents: 1, Method: "card"}, wantErr: domain.ErrInvalidTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := order.DecidePay(tt.state, tt.cmd)
			checkResult(t, got, err, tt.want, tt.wantErr, tt.wantFields)
		})
	}

	t.Run("mismatch message names the total", func(t *testing.T) {
		_, err := order.DecidePay(placed, order.Pay{AmountCents: 1, Method: "card"})
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 {
			t.Fatalf("err = %v", err)
		}
		if want := "must equal the order total 3397"; ve.Fields[0].Message != want {
			t.Fatalf("message = %q, want %q", ve.Fields[0].Message, want)
		}
	})
}

func TestDecideShip(t *testing.T) {
	paid := stateOf(placedEvent(), paidEvent)
	tests := []struct {
		name       string
		cmd        order.Ship
		want       []events.Payload
		wantFields []string
	}{
		{name: "ok", cmd: order.Ship{Carrier: "DHL", TrackingNumber: "JD1"}, want: []events.Payload{events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD1"}}},
		{name: "max lengths", cmd: order.Ship{Carrier: strings.Repeat("c", 50), TrackingNumber: strings.Repeat("t", 100)},
			want: []events.Payload{events.OrderShipped{Carrier: strings.Repeat("c", 50), TrackingNumber: strings.Repeat("t", 100)}}},
		{name: "empty carrier", cmd: order.Ship{TrackingNumber: "1"}, wantFields: []string{"carrier"}},
		{name: "carrier too long", cmd: order.Ship{Carrier: strings.Repeat("c", 51), TrackingNumber: "1"}, wantFields: []string{"carrier"}},
		{name: "empty tracking number", cmd: order.Ship{Carrier: "DHL"}, wantFields: []string{"tracking_number"}},
		{name: "tracking number too long", cmd: order.Ship{Carrier: "DHL", TrackingNumber: strings.Repeat("t", 101)}, wantFields: []string{"tracking_number"}},
		{name: "both invalid", cmd: order.Ship{}, wantFields: []string{"carrier", "tracking_number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := order.DecideShip(paid, tt.cmd)
			checkResult(t, got, err, tt.want, nil, tt.wantFields)
		})
	}
}

func TestDecideCancel(t *testing.T) {
	placed := stateOf(placedEvent())
	tests := []struct {
		name       string
		cmd        order.Cancel
		want       []events.Payload
		wantFields []string
	}{
		{name: "no reason", cmd: order.Cancel{}, want: []events.Payload{events.OrderCancelled{}}},
		{name: "reason of 200 chars", cmd: order.Cancel{Reason: strings.Repeat("r", 200)}, want: []events.Payload{events.OrderCancelled{Reason: strings.Repeat("r", 200)}}},
		{name: "reason too long", cmd: order.Cancel{Reason: strings.Repeat("r", 201)}, wantFields: []string{"reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := order.DecideCancel(placed, tt.cmd)
			checkResult(t, got, err, tt.want, nil, tt.wantFields)
		})
	}
}

func TestTotalCents(t *testing.T) {
	tests := []struct {
		name  string
		items []events.LineItem
		tax   int64
		want  int64
	}{
		{"no items, no tax", nil, 0, 0},
		{"tax only", nil, 42, 42},
		{"one line", []events.LineItem{{Quantity: 3, UnitPriceCents: 250}}, 0, 750},
		{"one line plus tax", []events.LineItem{{Quantity: 3, UnitPriceCents: 250}}, 60, 810},
		{"several lines plus tax", items(), 300, total},
		{"free line", []events.LineItem{{Quantity: 5, UnitPriceCents: 0}, {Quantity: 1, UnitPriceCents: 99}}, 1, 100},
		{"largest valid order", func() []events.LineItem {
			its := make([]events.LineItem, order.MaxItems)
			for i := range its {
				its[i] = events.LineItem{Quantity: 10_000, UnitPriceCents: 100_000_000}
			}
			return its
		}(), 7, 100*10_000*100_000_000 + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := events.OrderPlaced{Items: tt.items, TaxCents: tt.tax}
			if got := p.TotalCents(); got != tt.want {
				t.Fatalf("TotalCents() = %d, want %d", got, tt.want)
			}
			// The folded state carries the same total.
			if got := stateOf(p).TotalCents; got != tt.want {
				t.Fatalf("State.TotalCents = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	placedState := order.State{
		ID: streamID, CustomerID: customer, Status: order.StatusPlaced, Items: items(), TaxCents: 300, TotalCents: total,
		Currency: "EUR", ShippingAddress: address(), Version: 1, PlacedAt: recordedAt(1), UpdatedAt: recordedAt(1),
	}
	paidState := placedState
	paidState.Status, paidState.PaidCents, paidState.Version, paidState.UpdatedAt = order.StatusPaid, total, 2, recordedAt(2)
	shippedState := paidState
	shippedState.Status, shippedState.Carrier, shippedState.TrackingNumber, shippedState.Version, shippedState.UpdatedAt =
		order.StatusShipped, "DHL", "JD0001", 3, recordedAt(3)
	cancelledPaid := paidState
	cancelledPaid.Status, cancelledPaid.Version, cancelledPaid.UpdatedAt = order.StatusCancelled, 3, recordedAt(3)
	cancelledPlaced := placedState
	cancelledPlaced.Status, cancelledPlaced.Version, cancelledPlaced.UpdatedAt = order.StatusCancelled, 2, recordedAt(2)

	tests := []struct {
		name   string
		events []events.Payload
		want   order.State
	}{
		{"nothing", nil, order.State{}},
		{"placed", []events.Payload{placedEvent()}, placedState},
		{"placed without address or tax",
			[]events.Payload{events.OrderPlaced{CustomerID: customer, Items: items(), Currency: "USD"}},
			order.State{ID: streamID, CustomerID: customer, Status: order.StatusPlaced, Items: items(), TotalCents: total - 300,
				Currency: "USD", Version: 1, PlacedAt: recordedAt(1), UpdatedAt: recordedAt(1)}},
		{"paid", []events.Payload{placedEvent(), paidEvent}, paidState},
		{"shipped", []events.Payload{placedEvent(), paidEvent, shippedEvent}, shippedState},
		{"cancelled after payment", []events.Payload{placedEvent(), paidEvent, cancelledEvent}, cancelledPaid},
		{"cancelled before payment", []events.Payload{placedEvent(), cancelledEvent}, cancelledPlaced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := envs(tt.events...)
			got := order.Fold(order.State{}, evs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Fold =\n %+v\nwant\n %+v", got, tt.want)
			}
			if got.Exists() != (len(tt.events) > 0) {
				t.Fatalf("Exists() = %v", got.Exists())
			}
			// Evolve one event at a time from any snapshot gives the same state.
			for cut := 0; cut <= len(evs); cut++ {
				s := order.Fold(order.State{}, evs[:cut])
				for _, e := range evs[cut:] {
					s = order.Evolve(s, e)
				}
				if !reflect.DeepEqual(s, tt.want) {
					t.Fatalf("resumed at %d =\n %+v\nwant\n %+v", cut, s, tt.want)
				}
			}
		})
	}
}

// TestLifecycle walks the happy path through Decide and Evolve only.
func TestLifecycle(t *testing.T) {
	var s order.State
	var stream []events.Payload
	step := func(ps []events.Payload, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, ps...)
		s = order.Fold(order.State{}, envs(stream...))
	}
	step(order.DecidePlace(s, validPlace()))
	step(order.DecidePay(s, order.Pay{AmountCents: s.TotalCents, Method: "card"}))
	step(order.DecideShip(s, order.Ship{Carrier: "DHL", TrackingNumber: "JD0001"}))
	if s.Status != order.StatusShipped || s.Version != 3 || s.PaidCents != total || s.TotalCents != total || s.TrackingNumber != "JD0001" {
		t.Fatalf("final state %+v", s)
	}
	if _, err := order.DecideCancel(s, order.Cancel{}); !errors.Is(err, domain.ErrInvalidTransition) {
		t.Fatalf("cancel after shipping: %v", err)
	}
}

func TestStatusFinal(t *testing.T) {
	for status, want := range map[order.Status]bool{
		order.StatusPlaced: false, order.StatusPaid: false, order.StatusShipped: true, order.StatusCancelled: true, "": false,
	} {
		if got := status.Final(); got != want {
			t.Errorf("%q.Final() = %v, want %v", status, got, want)
		}
	}
}
