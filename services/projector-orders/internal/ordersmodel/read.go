package ordersmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
)

// Querier runs a query; *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Dump reads every row of the three read-model tables, sorted by primary
// key: the same shape Project computes, so a test or a rebuild check can
// compare tables with the fold of the event store.
func Dump(ctx context.Context, q Querier) (Rows, error) {
	var out Rows
	var err error
	if out.Orders, err = queryAll(ctx, q, `SELECT `+orderColumns+` FROM orders_view ORDER BY order_id`, scanOrder); err != nil {
		return Rows{}, fmt.Errorf("dump orders_view: %w", err)
	}
	if out.Accounts, err = queryAll(ctx, q, `SELECT `+accountColumns+` FROM accounts_balance ORDER BY account_id`, scanAccount); err != nil {
		return Rows{}, fmt.Errorf("dump accounts_balance: %w", err)
	}
	if out.Activity, err = queryAll(ctx, q, `SELECT `+activityColumns+` FROM account_activity ORDER BY account_id, version`, scanActivity); err != nil {
		return Rows{}, fmt.Errorf("dump account_activity: %w", err)
	}
	return out, nil
}

// ReadCheckpoint reads this projection's checkpoint row; ok is false when
// nothing was applied yet.
func ReadCheckpoint(ctx context.Context, q Querier) (cp Checkpoint, ok bool, err error) {
	rows, err := q.Query(ctx, `SELECT projection, position, events_applied, updated_at FROM projection_checkpoints WHERE projection = $1`, ordersdb.Projection)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	cp, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Checkpoint, error) {
		var c Checkpoint
		err := row.Scan(&c.Projection, &c.Position, &c.EventsApplied, &c.UpdatedAt)
		c.UpdatedAt = c.UpdatedAt.UTC()
		return c, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	return cp, true, nil
}

func queryAll[T any](ctx context.Context, q Querier, sql string, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

func scanActivity(row pgx.Row) (ActivityRow, error) {
	var r ActivityRow
	err := row.Scan(&r.AccountID, &r.Version, &r.Position, &r.Type, &r.AmountCents, &r.BalanceAfterCents, &r.Description, &r.RecordedAt)
	r.RecordedAt = r.RecordedAt.UTC()
	return r, err
}
