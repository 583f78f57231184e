// Package model holds the query API's response types. Every source (the
// Postgres read models, Redis, Elasticsearch and the event store) maps its
// own rows into these, so a client sees one shape for an order or an account
// whichever source answered.
package model

import (
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/pkg/events"
)

// ErrNotFound means the read model holds no such entity.
var ErrNotFound = errors.New("not found")

// Order is an order as clients see it. AsOf is set only for an answer built
// from the event store for a past instant or version.
type Order struct {
	OrderID         uuid.UUID         `json:"order_id"`
	CustomerID      uuid.UUID         `json:"customer_id"`
	Status          string            `json:"status"`
	Items           []events.LineItem `json:"items"`
	TaxCents        int64             `json:"tax_cents"`
	TotalCents      int64             `json:"total_cents"`
	Currency        string            `json:"currency"`
	ShippingAddress *events.Address   `json:"shipping_address,omitempty"`
	Version         int64             `json:"version"`
	PlacedAt        time.Time         `json:"placed_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	AsOf            *time.Time        `json:"as_of,omitempty"`
}

// OrderFromState maps a folded order aggregate to the response shape, so an
// as-of answer has exactly the fields of a read-model answer.
func OrderFromState(s order.State) Order {
	items := s.Items
	if items == nil {
		items = []events.LineItem{}
	}
	return Order{
		OrderID: s.ID, CustomerID: s.CustomerID, Status: string(s.Status), Items: items,
		TaxCents: s.TaxCents, TotalCents: s.TotalCents, Currency: s.Currency, ShippingAddress: s.ShippingAddress,
		Version: s.Version, PlacedAt: s.PlacedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

// Account is an account (wallet) as clients see it.
type Account struct {
	AccountID    uuid.UUID  `json:"account_id"`
	Owner        string     `json:"owner"`
	BalanceCents int64      `json:"balance_cents"`
	Currency     string     `json:"currency"`
	Status       string     `json:"status"`
	Version      int64      `json:"version"`
	UpdatedAt    time.Time  `json:"updated_at"`
	AsOf         *time.Time `json:"as_of,omitempty"`
}

// AccountFromState maps a folded account aggregate to the response shape.
func AccountFromState(s account.State) Account {
	return Account{
		AccountID: s.ID, Owner: s.Owner, BalanceCents: s.BalanceCents, Currency: s.Currency,
		Status: string(s.Status), Version: s.Version, UpdatedAt: s.UpdatedAt.UTC(),
	}
}

// Activity is one row of an account's activity: a money movement or a
// lifecycle event, with the balance it left.
type Activity struct {
	Version           int64     `json:"version"`
	Position          int64     `json:"position"`
	Type              string    `json:"type"`
	AmountCents       int64     `json:"amount_cents"`
	BalanceAfterCents int64     `json:"balance_after_cents"`
	Description       string    `json:"description"`
	RecordedAt        time.Time `json:"recorded_at"`
}

// CustomerStats are one customer's order statistics.
type CustomerStats struct {
	CustomerID      uuid.UUID  `json:"customer_id"`
	OrdersPlaced    int64      `json:"orders_placed"`
	OrdersPaid      int64      `json:"orders_paid"`
	OrdersCancelled int64      `json:"orders_cancelled"`
	TotalSpentCents int64      `json:"total_spent_cents"`
	LastOrderAt     *time.Time `json:"last_order_at"`
}

// TopCustomer is one entry of the top-customers ranking.
type TopCustomer struct {
	Rank            int    `json:"rank"`
	CustomerID      string `json:"customer_id"`
	TotalSpentCents int64  `json:"total_spent_cents"`
}

// Checkpoint is how far one projection got. A projection that has not
// recorded anything yet has the zero Checkpoint.
type Checkpoint struct {
	Position      int64
	EventsApplied int64
	UpdatedAt     *time.Time
}

// OrderKey is a position in an order list sorted by (placed_at DESC,
// order_id DESC): the page after it starts strictly below it.
type OrderKey struct {
	PlacedAt time.Time
	OrderID  uuid.UUID
}

// BalanceKey is a position in an account list sorted by (balance_cents
// DESC, account_id ASC).
type BalanceKey struct {
	BalanceCents int64
	AccountID    uuid.UUID
}

// SearchQuery is a validated order search.
type SearchQuery struct {
	Text          string
	Status        string
	CustomerID    string
	MinTotalCents *int64
	MaxTotalCents *int64
	From, To      *time.Time
	Limit         int
	// After holds the sort values of the last hit of the previous page
	// (placed_at in epoch milliseconds, order_id); nil for the first page.
	After []any
}

// SearchResult is one page of hits.
type SearchResult struct {
	Items []Order
	// Total counts every hit of the query, not just this page.
	Total int64
	// Next holds the sort values to continue after; nil on the last page.
	Next []any
}
