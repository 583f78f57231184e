package events

import (
	"encoding/json"

	"github.com/google/uuid"
)

// Event type names, as stored and as carried in the Kafka "type" header.
const (
	TypeAccountOpened   = "AccountOpened"
	TypeFundsDeposited  = "FundsDeposited"
	TypeFundsWithdrawn  = "FundsWithdrawn"
	TypeAccountClosed   = "AccountClosed"
	TypeDepositReversed = "DepositReversed"
	TypeOrderPlaced     = "OrderPlaced"
	TypeOrderPaid       = "OrderPaid"
	TypeOrderShipped    = "OrderShipped"
	TypeOrderCancelled  = "OrderCancelled"
)

// AccountOpened starts an account (wallet) stream.
type AccountOpened struct {
	Owner               string `json:"owner"`
	InitialBalanceCents int64  `json:"initial_balance_cents"`
	Currency            string `json:"currency"`
}

// FundsDeposited adds money to an open account.
type FundsDeposited struct {
	AmountCents int64  `json:"amount_cents"`
	Source      string `json:"source"`
}

// FundsWithdrawn takes money from an open account; it never makes the balance negative.
type FundsWithdrawn struct {
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason"`
}

// AccountClosed ends an account; a closed account takes no money.
type AccountClosed struct {
	Reason string `json:"reason"`
}

// DepositReversed is the compensating event for a deposit recorded in error.
// Events are never deleted: a correction is a new fact that points at the old one.
type DepositReversed struct {
	DepositVersion int64  `json:"deposit_version"`
	AmountCents    int64  `json:"amount_cents"`
	Reason         string `json:"reason"`
}

// LineItem is one line of an order.
type LineItem struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Address is where an order ships to.
type Address struct {
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// OrderPlaced starts an order stream. Schema version 2 added ShippingAddress
// and TaxCents; version 1 events are upcast with no address and no tax.
type OrderPlaced struct {
	CustomerID      uuid.UUID  `json:"customer_id"`
	Items           []LineItem `json:"items"`
	Currency        string     `json:"currency"`
	ShippingAddress *Address   `json:"shipping_address,omitempty"`
	TaxCents        int64      `json:"tax_cents"`
}

// TotalCents is what the customer owes: the items plus tax.
func (e OrderPlaced) TotalCents() int64 {
	total := e.TaxCents
	for _, it := range e.Items {
		total += it.Quantity * it.UnitPriceCents
	}
	return total
}

// OrderPaid records the payment of a placed order.
type OrderPaid struct {
	AmountCents int64  `json:"amount_cents"`
	Method      string `json:"method"`
}

// OrderShipped records the shipment of a paid order.
type OrderShipped struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// OrderCancelled ends an order that has not shipped.
type OrderCancelled struct {
	Reason string `json:"reason"`
}

// EventType implements Payload.
func (AccountOpened) EventType() string { return TypeAccountOpened }

// EventType implements Payload.
func (FundsDeposited) EventType() string { return TypeFundsDeposited }

// EventType implements Payload.
func (FundsWithdrawn) EventType() string { return TypeFundsWithdrawn }

// EventType implements Payload.
func (AccountClosed) EventType() string { return TypeAccountClosed }

// EventType implements Payload.
func (DepositReversed) EventType() string { return TypeDepositReversed }

// EventType implements Payload.
func (OrderPlaced) EventType() string { return TypeOrderPlaced }

// EventType implements Payload.
func (OrderPaid) EventType() string { return TypeOrderPaid }

// EventType implements Payload.
func (OrderShipped) EventType() string { return TypeOrderShipped }

// EventType implements Payload.
func (OrderCancelled) EventType() string { return TypeOrderCancelled }

// upcastOrderPlacedV1 turns an OrderPlaced v1 (no address, no tax) into v2.
func upcastOrderPlacedV1(old json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(old, &m); err != nil {
		return nil, err
	}
	m["tax_cents"] = json.RawMessage("0")
	return json.Marshal(m)
}
