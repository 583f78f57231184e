package ordersmodel

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres"
)

// orderCols holds orders_view rows column by column, the shape unnest takes.
type orderCols struct {
	ids, customers                  []pgtype.UUID
	statuses, items, currencies     []string
	addresses                       []*string
	tax, total, versions, positions []int64
	prev                            []int64
	placed, updated                 []time.Time
}

func (c *orderCols) add(r OrderRow, prev int64) error {
	ib, ab, err := r.JSONColumns()
	if err != nil {
		return err
	}
	var addr *string
	if ab != nil {
		s := string(ab)
		addr = &s
	}
	c.ids = append(c.ids, postgres.UUID(r.OrderID))
	c.customers = append(c.customers, postgres.UUID(r.CustomerID))
	c.statuses = append(c.statuses, r.Status)
	c.items = append(c.items, string(ib))
	c.tax = append(c.tax, r.TaxCents)
	c.total = append(c.total, r.TotalCents)
	c.currencies = append(c.currencies, r.Currency)
	c.addresses = append(c.addresses, addr)
	c.versions = append(c.versions, r.Version)
	c.positions = append(c.positions, r.LastPosition)
	c.placed = append(c.placed, r.PlacedAt)
	c.updated = append(c.updated, r.UpdatedAt)
	c.prev = append(c.prev, prev)
	return nil
}

func (c *orderCols) args() []any {
	return []any{c.ids, c.customers, c.statuses, c.items, c.tax, c.total, c.currencies, c.addresses,
		c.versions, c.positions, c.placed, c.updated, c.prev}
}

const orderUnnest = `unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[],
	$8::text[], $9::bigint[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::bigint[])
	AS u(order_id, customer_id, status, items, tax_cents, total_cents, currency, shipping_address,
	     version, last_position, placed_at, updated_at, prev_version)`

const orderColumns = `order_id, customer_id, status, items, tax_cents, total_cents, currency, shipping_address,
	version, last_position, placed_at, updated_at`

const (
	insertOrdersSQL = `INSERT INTO orders_view (` + orderColumns + `)
SELECT u.order_id, u.customer_id, u.status, u.items::jsonb, u.tax_cents, u.total_cents, u.currency,
       u.shipping_address::jsonb, u.version, u.last_position, u.placed_at, u.updated_at
FROM ` + orderUnnest + `
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id`

	updateOrdersSQL = `UPDATE orders_view AS o SET
	customer_id = u.customer_id, status = u.status, items = u.items::jsonb, tax_cents = u.tax_cents,
	total_cents = u.total_cents, currency = u.currency, shipping_address = u.shipping_address::jsonb,
	version = u.version, last_position = u.last_position, placed_at = u.placed_at, updated_at = u.updated_at
FROM ` + orderUnnest + `
WHERE o.order_id = u.order_id AND o.version = u.prev_version`

	lockOrdersSQL = `SELECT ` + orderColumns + ` FROM orders_view
WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR NO KEY UPDATE`
)

func scanOrder(row pgx.Row) (OrderRow, error) {
	var r OrderRow
	err := row.Scan(&r.OrderID, &r.CustomerID, &r.Status, &r.Items, &r.TaxCents, &r.TotalCents, &r.Currency,
		&r.ShippingAddress, &r.Version, &r.LastPosition, &r.PlacedAt, &r.UpdatedAt)
	r.PlacedAt, r.UpdatedAt = r.PlacedAt.UTC(), r.UpdatedAt.UTC()
	return r, err
}

// accountCols holds accounts_balance rows column by column.
type accountCols struct {
	ids                                 []pgtype.UUID
	owners, currencies, statuses        []string
	balances, versions, positions, prev []int64
	updated                             []time.Time
}

func (c *accountCols) add(r AccountRow, prev int64) {
	c.ids = append(c.ids, postgres.UUID(r.AccountID))
	c.owners = append(c.owners, r.Owner)
	c.balances = append(c.balances, r.BalanceCents)
	c.currencies = append(c.currencies, r.Currency)
	c.statuses = append(c.statuses, r.Status)
	c.versions = append(c.versions, r.Version)
	c.positions = append(c.positions, r.LastPosition)
	c.updated = append(c.updated, r.UpdatedAt)
	c.prev = append(c.prev, prev)
}

func (c *accountCols) args() []any {
	return []any{c.ids, c.owners, c.balances, c.currencies, c.statuses, c.versions, c.positions, c.updated, c.prev}
}

const accountUnnest = `unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
	$8::timestamptz[], $9::bigint[])
	AS u(account_id, owner, balance_cents, currency, status, version, last_position, updated_at, prev_version)`

const accountColumns = `account_id, owner, balance_cents, currency, status, version, last_position, updated_at`

const (
	insertAccountsSQL = `INSERT INTO accounts_balance (` + accountColumns + `)
SELECT u.account_id, u.owner, u.balance_cents, u.currency, u.status, u.version, u.last_position, u.updated_at
FROM ` + accountUnnest + `
ON CONFLICT (account_id) DO NOTHING
RETURNING account_id`

	updateAccountsSQL = `UPDATE accounts_balance AS a SET
	owner = u.owner, balance_cents = u.balance_cents, currency = u.currency, status = u.status,
	version = u.version, last_position = u.last_position, updated_at = u.updated_at
FROM ` + accountUnnest + `
WHERE a.account_id = u.account_id AND a.version = u.prev_version`

	lockAccountsSQL = `SELECT ` + accountColumns + ` FROM accounts_balance
WHERE account_id = ANY($1::uuid[]) ORDER BY account_id FOR NO KEY UPDATE`
)

func scanAccount(row pgx.Row) (AccountRow, error) {
	var r AccountRow
	err := row.Scan(&r.AccountID, &r.Owner, &r.BalanceCents, &r.Currency, &r.Status, &r.Version, &r.LastPosition, &r.UpdatedAt)
	r.UpdatedAt = r.UpdatedAt.UTC()
	return r, err
}

// activityCols holds account_activity rows column by column.
type activityCols struct {
	ids                 []pgtype.UUID
	versions, positions []int64
	types, descriptions []string
	amounts, balances   []int64
	recorded            []time.Time
}

func (c *activityCols) add(r ActivityRow) {
	c.ids = append(c.ids, postgres.UUID(r.AccountID))
	c.versions = append(c.versions, r.Version)
	c.positions = append(c.positions, r.Position)
	c.types = append(c.types, r.Type)
	c.amounts = append(c.amounts, r.AmountCents)
	c.balances = append(c.balances, r.BalanceAfterCents)
	c.descriptions = append(c.descriptions, r.Description)
	c.recorded = append(c.recorded, r.RecordedAt)
}

func (c *activityCols) append(o activityCols) {
	c.ids = append(c.ids, o.ids...)
	c.versions = append(c.versions, o.versions...)
	c.positions = append(c.positions, o.positions...)
	c.types = append(c.types, o.types...)
	c.amounts = append(c.amounts, o.amounts...)
	c.balances = append(c.balances, o.balances...)
	c.descriptions = append(c.descriptions, o.descriptions...)
	c.recorded = append(c.recorded, o.recorded...)
}

func (c *activityCols) args() []any {
	return []any{c.ids, c.versions, c.positions, c.types, c.amounts, c.balances, c.descriptions, c.recorded}
}

const activityColumns = `account_id, version, position, type, amount_cents, balance_after_cents, description, recorded_at`

// The balance row's version guard decides who writes an account version, so
// an existing activity row for it can only be a leftover (e.g. of a reset
// balance row); it is overwritten with what the guarded fold computed.
const activityConflict = `ON CONFLICT (account_id, version) DO UPDATE SET
	position = EXCLUDED.position, type = EXCLUDED.type, amount_cents = EXCLUDED.amount_cents,
	balance_after_cents = EXCLUDED.balance_after_cents, description = EXCLUDED.description,
	recorded_at = EXCLUDED.recorded_at`

const upsertActivitySQL = `INSERT INTO account_activity (` + activityColumns + `)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::timestamptz[])
` + activityConflict

// checkpointSQL is written last in every transaction, so the one hot row is
// locked only for the commit.
const checkpointSQL = `INSERT INTO projection_checkpoints (projection, position, events_applied, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (projection) DO UPDATE SET
	position = GREATEST(projection_checkpoints.position, EXCLUDED.position),
	events_applied = projection_checkpoints.events_applied + EXCLUDED.events_applied,
	updated_at = EXCLUDED.updated_at`
