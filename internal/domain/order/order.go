// Package order is the Order aggregate: placed -> paid -> shipped, with
// cancellation allowed until the order ships. Pure code, no I/O.
package order

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain"
	"github.com/escqrs/platform/pkg/events"
)

// Status of an order.
type Status string

// Order statuses.
const (
	StatusPlaced    Status = "placed"
	StatusPaid      Status = "paid"
	StatusShipped   Status = "shipped"
	StatusCancelled Status = "cancelled"
)

// Final reports whether an order in this status accepts no more commands:
// its stream has ended (shipped or cancelled).
func (s Status) Final() bool { return s == StatusShipped || s == StatusCancelled }

// State is an order folded from its events. The zero State is "does not exist".
type State struct {
	ID              uuid.UUID         `json:"order_id"`
	CustomerID      uuid.UUID         `json:"customer_id"`
	Status          Status            `json:"status"`
	Items           []events.LineItem `json:"items"`
	TaxCents        int64             `json:"tax_cents"`
	TotalCents      int64             `json:"total_cents"`
	PaidCents       int64             `json:"paid_cents"`
	Currency        string            `json:"currency"`
	ShippingAddress *events.Address   `json:"shipping_address,omitempty"`
	Carrier         string            `json:"carrier,omitempty"`
	TrackingNumber  string            `json:"tracking_number,omitempty"`
	Version         int64             `json:"version"`
	PlacedAt        time.Time         `json:"placed_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

// Exists reports whether the order was placed.
func (s State) Exists() bool { return s.Version > 0 }

// Evolve applies one event to the state.
func Evolve(s State, e events.Envelope) State {
	s.ID = e.StreamID
	s.Version = e.Version
	s.UpdatedAt = e.RecordedAt
	switch d := e.Data.(type) {
	case events.OrderPlaced:
		s.CustomerID, s.Items, s.Currency, s.Status = d.CustomerID, d.Items, d.Currency, StatusPlaced
		s.TaxCents, s.TotalCents, s.ShippingAddress = d.TaxCents, d.TotalCents(), d.ShippingAddress
		s.PlacedAt = e.RecordedAt
	case events.OrderPaid:
		s.Status, s.PaidCents = StatusPaid, d.AmountCents
	case events.OrderShipped:
		s.Status, s.Carrier, s.TrackingNumber = StatusShipped, d.Carrier, d.TrackingNumber
	case events.OrderCancelled:
		s.Status = StatusCancelled
	}
	return s
}

// Fold builds state from a sequence of events.
func Fold(s State, evs []events.Envelope) State {
	for _, e := range evs {
		s = Evolve(s, e)
	}
	return s
}

// Place is the command that creates an order.
type Place struct {
	CustomerID      uuid.UUID
	Items           []events.LineItem
	Currency        string
	ShippingAddress *events.Address
	TaxCents        int64
}

// Pay pays a placed order. AmountCents must equal the order total.
type Pay struct {
	AmountCents int64
	Method      string
}

// Ship ships a paid order.
type Ship struct {
	Carrier        string
	TrackingNumber string
}

// Cancel cancels an order that has not shipped.
type Cancel struct {
	Reason string
}

// MaxItems bounds the size of one order.
const MaxItems = 100

// DecidePlace validates a new order.
func DecidePlace(s State, c Place) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.CustomerID != uuid.Nil, "customer_id", "must be a UUID")
	v.Check(domain.ValidCurrency(c.Currency), "currency", "must be a three-letter ISO 4217 code")
	v.Check(len(c.Items) > 0 && len(c.Items) <= MaxItems, "items", fmt.Sprintf("must hold 1 to %d lines", MaxItems))
	v.Check(c.TaxCents >= 0, "tax_cents", "must not be negative")
	for i, it := range c.Items {
		field := fmt.Sprintf("items[%d].", i)
		v.Check(it.SKU != "" && len(it.SKU) <= 64, field+"sku", "must be 1 to 64 characters")
		v.Check(it.Name != "" && len(it.Name) <= 200, field+"name", "must be 1 to 200 characters")
		v.Check(it.Quantity > 0 && it.Quantity <= 10_000, field+"quantity", "must be 1 to 10000")
		v.Check(it.UnitPriceCents >= 0 && it.UnitPriceCents <= 100_000_000, field+"unit_price_cents", "must be 0 to 100000000")
	}
	if a := c.ShippingAddress; a != nil {
		v.Check(a.Line1 != "", "shipping_address.line1", "must not be empty")
		v.Check(a.City != "", "shipping_address.city", "must not be empty")
		v.Check(len(a.Country) == 2, "shipping_address.country", "must be a two-letter ISO 3166 code")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Valid lines sum to at most MaxItems * 10000 * 100000000, far from
	// overflowing; only the (otherwise unbounded) tax can push the total past int64.
	var itemsCents int64
	for _, it := range c.Items {
		itemsCents += it.Quantity * it.UnitPriceCents
	}
	if c.TaxCents > math.MaxInt64-itemsCents {
		return nil, &domain.ValidationError{Fields: []domain.FieldError{{Field: "tax_cents", Message: "makes the order total overflow"}}}
	}
	if s.Exists() {
		return nil, domain.ErrAlreadyExists
	}
	return []events.Payload{events.OrderPlaced{
		CustomerID: c.CustomerID, Items: c.Items, Currency: c.Currency,
		ShippingAddress: c.ShippingAddress, TaxCents: c.TaxCents,
	}}, nil
}

// DecidePay records payment of the full total of a placed order.
func DecidePay(s State, c Pay) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.AmountCents > 0, "amount_cents", "must be positive")
	v.Check(c.Method != "" && len(c.Method) <= 50, "method", "must be 1 to 50 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.ErrNotFound
	}
	if s.Status != StatusPlaced {
		return nil, fmt.Errorf("pay an order that is %s: %w", s.Status, domain.ErrInvalidTransition)
	}
	if c.AmountCents != s.TotalCents {
		return nil, &domain.ValidationError{Fields: []domain.FieldError{{
			Field: "amount_cents", Message: fmt.Sprintf("must equal the order total %d", s.TotalCents)}}}
	}
	return []events.Payload{events.OrderPaid{AmountCents: c.AmountCents, Method: c.Method}}, nil
}

// DecideShip ships a paid order.
func DecideShip(s State, c Ship) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.Carrier != "" && len(c.Carrier) <= 50, "carrier", "must be 1 to 50 characters")
	v.Check(c.TrackingNumber != "" && len(c.TrackingNumber) <= 100, "tracking_number", "must be 1 to 100 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.ErrNotFound
	}
	if s.Status != StatusPaid {
		return nil, fmt.Errorf("ship an order that is %s: %w", s.Status, domain.ErrInvalidTransition)
	}
	return []events.Payload{events.OrderShipped{Carrier: c.Carrier, TrackingNumber: c.TrackingNumber}}, nil
}

// DecideCancel cancels an order that is placed or paid.
func DecideCancel(s State, c Cancel) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(len(c.Reason) <= 200, "reason", "must be at most 200 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.ErrNotFound
	}
	if s.Status != StatusPlaced && s.Status != StatusPaid {
		return nil, fmt.Errorf("cancel an order that is %s: %w", s.Status, domain.ErrInvalidTransition)
	}
	return []events.Payload{events.OrderCancelled{Reason: c.Reason}}, nil
}
