// Package statskeys is the Redis key layout of projector-stats, shared with
// the query API.
//
// Every key lives in a namespace so that a rebuild can fill a fresh key space
// and switch readers over atomically by changing ActiveNamespaceKey. The
// live projector and the query API read the active namespace from that key
// (DefaultNamespace when it is absent).
package statskeys

// ActiveNamespaceKey holds the namespace readers and the live projector use.
const ActiveNamespaceKey = "stats:active-namespace"

// DefaultNamespace is used until a rebuild has switched namespaces.
const DefaultNamespace = "s1"

// Projection is this read model's name in GET /v1/projections.
const Projection = "stats"

// Keys builds the keys of one namespace.
type Keys struct{ NS string }

// CustomerStats is a hash: orders_placed, orders_paid, orders_cancelled,
// total_spent_cents, last_order_at (RFC 3339, UTC).
func (k Keys) CustomerStats(customerID string) string { return k.NS + ":customer:" + customerID }

// AccountBalance is a hash: balance_cents, currency, status, version, updated_at.
func (k Keys) AccountBalance(accountID string) string { return k.NS + ":balance:" + accountID }

// Order is a hash of what stats need to remember per order: customer_id,
// total_cents, paid_cents, status, version.
func (k Keys) Order(orderID string) string { return k.NS + ":order:" + orderID }

// StreamVersion is the last applied version of an account stream (orders
// keep theirs in the Order hash).
func (k Keys) StreamVersion(streamID string) string { return k.NS + ":version:" + streamID }

// TopCustomers is a sorted set: member customer id, score total_spent_cents.
func (k Keys) TopCustomers() string { return k.NS + ":top-customers" }

// Checkpoint is a hash: position (highest store position applied),
// events_applied, updated_at (RFC 3339).
func (k Keys) Checkpoint() string { return k.NS + ":checkpoint" }
