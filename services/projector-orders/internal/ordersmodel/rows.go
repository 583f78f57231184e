package ordersmodel

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/pkg/events"
)

// ErrInvalidEvent marks an event this model can never apply (a payload that
// does not match its stream type, a stream that does not start with its
// creation event, versions out of order). It is not transient: the consumer
// sends such an event to the dead-letter topic instead of retrying forever.
var ErrInvalidEvent = errors.New("invalid event for the orders read model")

// OrderRow is one row of orders_view.
type OrderRow struct {
	OrderID         uuid.UUID
	CustomerID      uuid.UUID
	Status          string
	Items           []events.LineItem
	TaxCents        int64
	TotalCents      int64
	Currency        string
	ShippingAddress *events.Address
	Version         int64
	LastPosition    int64
	PlacedAt        time.Time
	UpdatedAt       time.Time
}

// AccountRow is one row of accounts_balance.
type AccountRow struct {
	AccountID    uuid.UUID
	Owner        string
	BalanceCents int64
	Currency     string
	Status       string
	Version      int64
	LastPosition int64
	UpdatedAt    time.Time
}

// ActivityRow is one row of account_activity: one per account event.
// AmountCents is signed (what the event did to the balance).
type ActivityRow struct {
	AccountID         uuid.UUID
	Version           int64
	Position          int64
	Type              string
	AmountCents       int64
	BalanceAfterCents int64
	Description       string
	RecordedAt        time.Time
}

// JSONColumns encodes the row's jsonb columns as orders_view stores them:
// the items as a JSON array, never null (the column is NOT NULL), and the
// shipping address, nil when the order has none (the column is NULL).
func (r OrderRow) JSONColumns() (items, address []byte, err error) {
	list := r.Items
	if list == nil {
		list = []events.LineItem{}
	}
	if items, err = json.Marshal(list); err != nil {
		return nil, nil, fmt.Errorf("encode items of order %s: %w", r.OrderID, err)
	}
	if r.ShippingAddress != nil {
		if address, err = json.Marshal(r.ShippingAddress); err != nil {
			return nil, nil, fmt.Errorf("encode address of order %s: %w", r.OrderID, err)
		}
	}
	return items, address, nil
}

// Checkpoint is the projection_checkpoints row of this projection.
type Checkpoint struct {
	Projection    string
	Position      int64
	EventsApplied int64
	UpdatedAt     time.Time
}

// Rows is the content of the read-model tables, each sorted by primary key.
type Rows struct {
	Orders   []OrderRow
	Accounts []AccountRow
	Activity []ActivityRow
}

// Diff describes how r differs from want: the row counts if they differ,
// else every differing row. It is empty when they are equal.
func (r Rows) Diff(want Rows) []string {
	if len(r.Orders) != len(want.Orders) || len(r.Accounts) != len(want.Accounts) || len(r.Activity) != len(want.Activity) {
		return []string{fmt.Sprintf("row counts: got orders=%d accounts=%d activity=%d, want %d/%d/%d",
			len(r.Orders), len(r.Accounts), len(r.Activity), len(want.Orders), len(want.Accounts), len(want.Activity))}
	}
	return slices.Concat(diffRows("orders_view", r.Orders, want.Orders),
		diffRows("accounts_balance", r.Accounts, want.Accounts), diffRows("account_activity", r.Activity, want.Activity))
}

func diffRows[T any](table string, got, want []T) []string {
	var out []string
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			out = append(out, fmt.Sprintf("%s row %d:\n got %+v\nwant %+v", table, i, got[i], want[i]))
		}
	}
	return out
}

// Project computes the rows that applying evs to empty tables yields, with
// exactly the fold the Model uses. Events must be complete streams from
// version 1, in version order per stream; duplicates (version at or below
// what the stream already reached) are ignored as the Model ignores them.
// It is pure: tests and a rebuild check can compare tables with it.
func Project(evs []events.Envelope) (Rows, error) {
	f := NewFolder()
	var out Rows
	for _, e := range evs {
		act, ok, err := f.Apply(e)
		if err != nil {
			return Rows{}, err
		}
		if ok {
			out.Activity = append(out.Activity, act)
		}
	}
	out.Orders, out.Accounts = f.Orders(), f.Accounts()
	out.sort()
	return out, nil
}

// Folder folds events, one at a time, into the latest orders_view and
// accounts_balance row of every stream, with exactly the fold the Model uses
// (Project is built on it). A rebuild uses it to compute the tables in
// memory: it holds one row per stream it has seen, about 400 bytes each on
// average (an order's items included), so 500,000 aggregates take some
// 200 MB. It is not safe for concurrent use.
type Folder struct {
	orders   map[uuid.UUID]*OrderRow
	accounts map[uuid.UUID]*AccountRow
}

// NewFolder returns an empty Folder.
func NewFolder() *Folder {
	return &Folder{orders: map[uuid.UUID]*OrderRow{}, accounts: map[uuid.UUID]*AccountRow{}}
}

// Apply folds e. An account event yields its account_activity row (ok). An
// event at or below its stream's version is ignored as a duplicate; one
// beyond the next version, or one the model can never apply, is an error
// wrapping ErrInvalidEvent.
func (f *Folder) Apply(e events.Envelope) (act ActivityRow, ok bool, err error) {
	if err := validate(e); err != nil {
		return ActivityRow{}, false, err
	}
	switch e.StreamType {
	case events.StreamOrder:
		r := f.orders[e.StreamID]
		var cur OrderRow
		if r != nil {
			cur = *r
		}
		if e.Version <= cur.Version {
			return ActivityRow{}, false, nil
		}
		if e.Version != cur.Version+1 {
			return ActivityRow{}, false, fmt.Errorf("%w: order %s jumps from version %d to %d", ErrInvalidEvent, e.StreamID, cur.Version, e.Version)
		}
		if r == nil {
			r = new(OrderRow)
			f.orders[e.StreamID] = r
		}
		*r = evolveOrder(cur, e)
		return ActivityRow{}, false, nil
	default: // validate admits only the two stream types
		r := f.accounts[e.StreamID]
		var cur AccountRow
		if r != nil {
			cur = *r
		}
		if e.Version <= cur.Version {
			return ActivityRow{}, false, nil
		}
		if e.Version != cur.Version+1 {
			return ActivityRow{}, false, fmt.Errorf("%w: account %s jumps from version %d to %d", ErrInvalidEvent, e.StreamID, cur.Version, e.Version)
		}
		if r == nil {
			r = new(AccountRow)
			f.accounts[e.StreamID] = r
		}
		*r, act = evolveAccount(cur, e)
		return act, true, nil
	}
}

// Order returns the orders_view row of an order folded so far.
func (f *Folder) Order(id uuid.UUID) (OrderRow, bool) {
	r := f.orders[id]
	if r == nil {
		return OrderRow{}, false
	}
	return *r, true
}

// Len is the number of order and account streams folded.
func (f *Folder) Len() (orders, accounts int) { return len(f.orders), len(f.accounts) }

// Orders returns the orders_view rows, in no particular order.
func (f *Folder) Orders() []OrderRow {
	out := make([]OrderRow, 0, len(f.orders))
	for _, r := range f.orders {
		out = append(out, *r)
	}
	return out
}

// Accounts returns the accounts_balance rows, in no particular order.
func (f *Folder) Accounts() []AccountRow {
	out := make([]AccountRow, 0, len(f.accounts))
	for _, r := range f.accounts {
		out = append(out, *r)
	}
	return out
}

func (r *Rows) sort() {
	slices.SortFunc(r.Orders, func(a, b OrderRow) int { return compareUUID(a.OrderID, b.OrderID) })
	slices.SortFunc(r.Accounts, func(a, b AccountRow) int { return compareUUID(a.AccountID, b.AccountID) })
	slices.SortFunc(r.Activity, func(a, b ActivityRow) int {
		if c := compareUUID(a.AccountID, b.AccountID); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
}

// compareUUID orders ids as Postgres orders the uuid type (bytewise).
func compareUUID(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// validate rejects events the model could only apply as garbage.
func validate(e events.Envelope) error {
	if e.Data == nil {
		return fmt.Errorf("%w: %s %s v%d has no payload", ErrInvalidEvent, e.Type, e.StreamID, e.Version)
	}
	typ := e.Data.EventType()
	if typ != e.Type || events.StreamTypeOf(typ) != e.StreamType {
		return fmt.Errorf("%w: %s payload in a %q event of a %q stream %s", ErrInvalidEvent, typ, e.Type, e.StreamType, e.StreamID)
	}
	creates := typ == events.TypeOrderPlaced || typ == events.TypeAccountOpened
	if creates != (e.Version == 1) {
		return fmt.Errorf("%w: %s at version %d of %s (a stream starts with its creation event, and only once)",
			ErrInvalidEvent, typ, e.Version, e.StreamID)
	}
	return nil
}

// evolveOrder applies e with the Order aggregate's own Evolve, so the view
// can never disagree with the write side on what an event means (e.g. total
// = items + tax).
func evolveOrder(r OrderRow, e events.Envelope) OrderRow {
	s := order.Evolve(order.State{
		ID: r.OrderID, CustomerID: r.CustomerID, Status: order.Status(r.Status), Items: r.Items,
		TaxCents: r.TaxCents, TotalCents: r.TotalCents, Currency: r.Currency, ShippingAddress: r.ShippingAddress,
		Version: r.Version, PlacedAt: r.PlacedAt, UpdatedAt: r.UpdatedAt,
	}, e)
	items := s.Items
	if items == nil {
		items = []events.LineItem{} // the column is NOT NULL: stored as []
	}
	return OrderRow{
		OrderID: s.ID, CustomerID: s.CustomerID, Status: string(s.Status), Items: items,
		TaxCents: s.TaxCents, TotalCents: s.TotalCents, Currency: s.Currency, ShippingAddress: s.ShippingAddress,
		Version: s.Version, LastPosition: e.Position, PlacedAt: dbTime(s.PlacedAt), UpdatedAt: dbTime(s.UpdatedAt),
	}
}

// evolveAccount applies e with the Account aggregate's Evolve and derives the
// activity row from the balance before and after, so the signed amount is by
// construction what the event did to the balance.
func evolveAccount(r AccountRow, e events.Envelope) (AccountRow, ActivityRow) {
	s := account.Evolve(account.State{
		ID: r.AccountID, Owner: r.Owner, BalanceCents: r.BalanceCents, Currency: r.Currency,
		Status: account.Status(r.Status), Version: r.Version, UpdatedAt: r.UpdatedAt,
	}, e)
	next := AccountRow{
		AccountID: s.ID, Owner: s.Owner, BalanceCents: s.BalanceCents, Currency: s.Currency,
		Status: string(s.Status), Version: s.Version, LastPosition: e.Position, UpdatedAt: dbTime(s.UpdatedAt),
	}
	act := ActivityRow{
		AccountID: e.StreamID, Version: e.Version, Position: e.Position, Type: e.Type,
		AmountCents: s.BalanceCents - r.BalanceCents, BalanceAfterCents: s.BalanceCents,
		Description: Describe(e.Data), RecordedAt: dbTime(e.RecordedAt),
	}
	return next, act
}

// Describe is the account_activity description of an account event: where a
// deposit came from, why money was withdrawn, why a deposit was reversed or
// the account closed.
func Describe(p events.Payload) string {
	switch d := p.(type) {
	case events.AccountOpened:
		return "account opened"
	case events.FundsDeposited:
		return d.Source
	case events.FundsWithdrawn:
		return d.Reason
	case events.DepositReversed:
		return d.Reason
	case events.AccountClosed:
		return d.Reason
	}
	return ""
}

// dbTime is t as timestamptz stores it: UTC, truncated to microseconds (pgx
// truncates when it encodes), so computed rows compare equal to stored ones.
func dbTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}
