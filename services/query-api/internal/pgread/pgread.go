// Package pgread reads projector-orders' Postgres read models (the
// ordersdb contract): orders_view, accounts_balance, account_activity and
// projection_checkpoints. It never writes.
package pgread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// Reader queries the read models. It is safe for concurrent use.
type Reader struct{ pool *pgxpool.Pool }

// New returns a Reader over pool.
func New(pool *pgxpool.Pool) *Reader { return &Reader{pool: pool} }

const orderColumns = `order_id, customer_id, status, items, tax_cents, total_cents, currency,
	shipping_address, version, placed_at, updated_at`

// Order returns one order, or model.ErrNotFound.
func (r *Reader) Order(ctx context.Context, id uuid.UUID) (model.Order, error) {
	rows, err := r.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders_view WHERE order_id = $1`, postgres.UUID(id))
	if err != nil {
		return model.Order{}, fmt.Errorf("read order %s: %w", id, err)
	}
	orders, err := collectOrders(rows)
	if err != nil {
		return model.Order{}, fmt.Errorf("read order %s: %w", id, err)
	}
	if len(orders) == 0 {
		return model.Order{}, fmt.Errorf("order %s: %w", id, model.ErrNotFound)
	}
	return orders[0], nil
}

// CustomerOrders returns up to limit orders of a customer, newest first by
// (placed_at, order_id), strictly after the key after (nil: from the start).
func (r *Reader) CustomerOrders(ctx context.Context, customerID uuid.UUID, after *model.OrderKey, limit int) ([]model.Order, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = r.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders_view WHERE customer_id = $1
			ORDER BY placed_at DESC, order_id DESC LIMIT $2`, postgres.UUID(customerID), limit)
	} else {
		rows, err = r.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders_view
			WHERE customer_id = $1 AND (placed_at, order_id) < ($2, $3)
			ORDER BY placed_at DESC, order_id DESC LIMIT $4`, postgres.UUID(customerID), after.PlacedAt, postgres.UUID(after.OrderID), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list orders of customer %s: %w", customerID, err)
	}
	orders, err := collectOrders(rows)
	if err != nil {
		return nil, fmt.Errorf("list orders of customer %s: %w", customerID, err)
	}
	return orders, nil
}

func collectOrders(rows pgx.Rows) ([]model.Order, error) {
	defer rows.Close()
	out := []model.Order{}
	for rows.Next() {
		var (
			o           model.Order
			items, addr []byte
		)
		if err := rows.Scan(&o.OrderID, &o.CustomerID, &o.Status, &items, &o.TaxCents, &o.TotalCents, &o.Currency,
			&addr, &o.Version, &o.PlacedAt, &o.UpdatedAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(items, &o.Items); err != nil {
			return nil, fmt.Errorf("order %s items: %w", o.OrderID, err)
		}
		if o.Items == nil {
			o.Items = []events.LineItem{}
		}
		if len(addr) > 0 {
			if err := json.Unmarshal(addr, &o.ShippingAddress); err != nil {
				return nil, fmt.Errorf("order %s shipping address: %w", o.OrderID, err)
			}
		}
		o.PlacedAt, o.UpdatedAt = o.PlacedAt.UTC(), o.UpdatedAt.UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

const accountColumns = `account_id, owner, balance_cents, currency, status, version, updated_at`

// Account returns one account, or model.ErrNotFound.
func (r *Reader) Account(ctx context.Context, id uuid.UUID) (model.Account, error) {
	rows, err := r.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts_balance WHERE account_id = $1`, postgres.UUID(id))
	if err != nil {
		return model.Account{}, fmt.Errorf("read account %s: %w", id, err)
	}
	accounts, err := collectAccounts(rows)
	if err != nil {
		return model.Account{}, fmt.Errorf("read account %s: %w", id, err)
	}
	if len(accounts) == 0 {
		return model.Account{}, fmt.Errorf("account %s: %w", id, model.ErrNotFound)
	}
	return accounts[0], nil
}

// AccountsByBalance returns up to limit accounts whose balance is at least
// minCents, by balance descending then account id ascending, strictly after
// the key after (nil: from the start).
func (r *Reader) AccountsByBalance(ctx context.Context, minCents int64, after *model.BalanceKey, limit int) ([]model.Account, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = r.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts_balance WHERE balance_cents >= $1
			ORDER BY balance_cents DESC, account_id LIMIT $2`, minCents, limit)
	} else {
		rows, err = r.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts_balance
			WHERE balance_cents >= $1 AND (balance_cents < $2 OR (balance_cents = $2 AND account_id > $3))
			ORDER BY balance_cents DESC, account_id LIMIT $4`, minCents, after.BalanceCents, postgres.UUID(after.AccountID), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list accounts with balance >= %d: %w", minCents, err)
	}
	accounts, err := collectAccounts(rows)
	if err != nil {
		return nil, fmt.Errorf("list accounts with balance >= %d: %w", minCents, err)
	}
	return accounts, nil
}

func collectAccounts(rows pgx.Rows) ([]model.Account, error) {
	defer rows.Close()
	out := []model.Account{}
	for rows.Next() {
		var a model.Account
		if err := rows.Scan(&a.AccountID, &a.Owner, &a.BalanceCents, &a.Currency, &a.Status, &a.Version, &a.UpdatedAt); err != nil {
			return nil, err
		}
		a.UpdatedAt = a.UpdatedAt.UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// AccountActivity returns up to limit activity rows of an account with a
// version below beforeVersion (0: no bound), newest first. An account the
// read model does not know is model.ErrNotFound.
func (r *Reader) AccountActivity(ctx context.Context, id uuid.UUID, beforeVersion int64, limit int) ([]model.Activity, error) {
	if beforeVersion <= 0 {
		beforeVersion = math.MaxInt64
	}
	rows, err := r.pool.Query(ctx, `SELECT version, position, type, amount_cents, balance_after_cents, description, recorded_at
		FROM account_activity WHERE account_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3`, postgres.UUID(id), beforeVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("read activity of account %s: %w", id, err)
	}
	defer rows.Close()
	out := []model.Activity{}
	for rows.Next() {
		var a model.Activity
		if err := rows.Scan(&a.Version, &a.Position, &a.Type, &a.AmountCents, &a.BalanceAfterCents, &a.Description, &a.RecordedAt); err != nil {
			return nil, fmt.Errorf("read activity of account %s: %w", id, err)
		}
		a.RecordedAt = a.RecordedAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read activity of account %s: %w", id, err)
	}
	if len(out) == 0 {
		// An empty page is either the end of a known account's activity or
		// an account nobody opened; only the second is a 404.
		var exists bool
		if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts_balance WHERE account_id = $1)`, postgres.UUID(id)).Scan(&exists); err != nil {
			return nil, fmt.Errorf("read account %s: %w", id, err)
		}
		if !exists {
			return nil, fmt.Errorf("account %s: %w", id, model.ErrNotFound)
		}
	}
	return out, nil
}

// Checkpoint returns the progress projection recorded in
// projection_checkpoints (the zero Checkpoint when it has recorded none).
func (r *Reader) Checkpoint(ctx context.Context, projection string) (model.Checkpoint, error) {
	var (
		cp      model.Checkpoint
		updated time.Time
	)
	err := r.pool.QueryRow(ctx, `SELECT position, events_applied, updated_at FROM projection_checkpoints WHERE projection = $1`,
		projection).Scan(&cp.Position, &cp.EventsApplied, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Checkpoint{}, nil
	}
	if err != nil {
		return model.Checkpoint{}, fmt.Errorf("read checkpoint %s: %w", projection, err)
	}
	updated = updated.UTC()
	cp.UpdatedAt = &updated
	return cp, nil
}
