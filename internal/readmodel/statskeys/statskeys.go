// Package statskeys is the Redis key layout of projector-stats, shared with
// the query API.
//
// Every key lives in a namespace so that a rebuild can fill a fresh key space
// and switch readers over atomically by changing ActiveNamespaceKey. The
// live projector and the query API read the active namespace from that key
// (DefaultNamespace when it is absent or empty).
//
// Every value is a Redis string: integers in decimal (cents, counts,
// versions, positions), times in TimeLayout (UTC). A hash field that is
// absent means the key does not exist yet (the projector writes every field
// listed for a key the first time it creates that key).
package statskeys

import "time"

// ActiveNamespaceKey holds the namespace readers and the live projector use.
const ActiveNamespaceKey = "stats:active-namespace"

// DefaultNamespace is used until a rebuild has switched namespaces.
// Rebuilds name the namespaces they fill s2, s3, ... (under the same
// prefix as ActiveNamespaceKey).
const DefaultNamespace = "s1"

// RebuildLockKey holds a lease (a random token with a time to live) while a
// rebuild fills a namespace, switches to it and deletes the old one, so that
// two rebuilds of one deployment never run at once. Only projector-stats
// uses it; it takes the same prefix as ActiveNamespaceKey.
const RebuildLockKey = "stats:rebuild-lock"

// Projection is this read model's name in GET /v1/projections.
const Projection = "stats"

// TimeLayout is the format of every time stored under these keys: RFC 3339
// in UTC with exactly nine fractional digits (2024-05-01T10:00:00.123456000Z).
// Fixed width makes the strings compare in time order, which the projector
// relies on for last_order_at; time.Parse(time.RFC3339Nano, s) reads them.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime formats t in TimeLayout, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Fields of the CustomerStats hash.
const (
	// FieldOrdersPlaced counts the customer's OrderPlaced events.
	FieldOrdersPlaced = "orders_placed"
	// FieldOrdersPaid counts the customer's orders that were paid, including
	// those cancelled (refunded) afterwards.
	FieldOrdersPaid = "orders_paid"
	// FieldOrdersCancelled counts the customer's OrderCancelled events.
	FieldOrdersCancelled = "orders_cancelled"
	// FieldTotalSpentCents is the sum of OrderPaid amounts of the customer's
	// orders that were not cancelled afterwards (a cancelled paid order is
	// refunded).
	FieldTotalSpentCents = "total_spent_cents"
	// FieldLastOrderAt is the recorded_at of the customer's newest OrderPlaced.
	FieldLastOrderAt = "last_order_at"
)

// Fields of the AccountBalance hash.
const (
	FieldBalanceCents = "balance_cents"
	FieldCurrency     = "currency"
	// FieldOwner is the account owner from AccountOpened (added after the
	// first version of this layout).
	FieldOwner = "owner"
	// FieldStatus is "open" or "closed".
	FieldStatus = "status"
	// FieldVersion is the stream version the hash reflects.
	FieldVersion = "version"
	// FieldUpdatedAt is the recorded_at of the last event applied.
	FieldUpdatedAt = "updated_at"
)

// Fields of the Order hash (FieldStatus and FieldVersion are shared).
const (
	FieldCustomerID = "customer_id"
	FieldTotalCents = "total_cents"
	// FieldPaidCents is the OrderPaid amount (0 until paid; kept after a
	// cancellation, like the order aggregate's PaidCents).
	FieldPaidCents = "paid_cents"
)

// Fields of the Checkpoint hash (FieldUpdatedAt is shared: the wall-clock
// time of the last write).
const (
	// FieldPosition is the highest store position applied. Partitions are
	// consumed independently, so events below it may still be in flight.
	FieldPosition = "position"
	// FieldEventsApplied counts events applied exactly once (duplicates are
	// not counted).
	FieldEventsApplied = "events_applied"
)

// Prefixed returns the active-namespace key and the default namespace under
// prefix (STATS_KEY_PREFIX), so that several deployments or test runs can
// share one Redis server.
func Prefixed(prefix string) (activeKey, defaultNamespace string) {
	return prefix + ActiveNamespaceKey, prefix + DefaultNamespace
}

// Keys builds the keys of one namespace.
type Keys struct{ NS string }

// CustomerStats is a hash: orders_placed, orders_paid, orders_cancelled,
// total_spent_cents, last_order_at (TimeLayout, UTC). See the Field
// constants for their exact meaning.
func (k Keys) CustomerStats(customerID string) string { return k.NS + ":customer:" + customerID }

// AccountBalance is a hash: balance_cents, currency, owner, status (open or
// closed), version, updated_at (TimeLayout, the recorded_at of the last
// event). It follows the same fold as the account aggregate.
func (k Keys) AccountBalance(accountID string) string { return k.NS + ":balance:" + accountID }

// Order is a hash of what stats need to remember per order: customer_id,
// total_cents, paid_cents, status (placed, paid, shipped or cancelled),
// version. Its version field is the order stream's applied version.
func (k Keys) Order(orderID string) string { return k.NS + ":order:" + orderID }

// StreamVersion is a string: the last applied version of an account stream
// (orders keep theirs in the Order hash). The projector checks and sets it
// atomically with every change; the balance hash's version field always
// equals it.
func (k Keys) StreamVersion(streamID string) string { return k.NS + ":version:" + streamID }

// TopCustomers is a sorted set: member customer id, score total_spent_cents.
// A customer joins it with their first paid order and stays (a refund can
// bring the score back to 0).
func (k Keys) TopCustomers() string { return k.NS + ":top-customers" }

// Checkpoint is a hash: position (highest store position applied),
// events_applied, updated_at (TimeLayout, wall clock of the last write).
func (k Keys) Checkpoint() string { return k.NS + ":checkpoint" }
