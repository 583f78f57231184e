package ordersmodel

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
)

// applyLocked inserts the streams that start in the batch, locks the rows
// of the others, folds what each row lacks and writes it all: three round
// trips whatever the batch size.
func (m *Model) applyLocked(ctx context.Context, orders, accounts []*stream) (Result, error) {
	var res Result
	err := pgx.BeginFunc(ctx, m.db, func(tx pgx.Tx) error {
		var w writes
		lockOrders, lockAccounts, err := w.insertNew(ctx, tx, orders, accounts)
		if err != nil {
			return err
		}
		if err := w.lockAndFold(ctx, tx, lockOrders, lockAccounts); err != nil {
			return err
		}
		if err := w.flush(ctx, tx, orders, accounts); err != nil {
			return err
		}
		res = w.res
		return nil
	})
	return res, err
}

// writes collects one transaction's changes.
type writes struct {
	orderUpdates   orderCols
	accountUpdates accountCols
	activity       activityCols
	res            Result
}

// insertNew inserts, in one round trip, the final rows of the streams that
// start (version 1) in this batch. ON CONFLICT DO NOTHING waits for a
// concurrent inserter of the same id to end; a stream it reports as taken
// joins the streams whose rows are locked and continued in lockAndFold.
func (w *writes) insertNew(ctx context.Context, tx pgx.Tx, orders, accounts []*stream) (lockOrders, lockAccounts []*stream, err error) {
	var (
		newOrders, newAccounts []*stream
		orderRows              orderCols
		accountRows            accountCols
		activity               []activityCols
	)
	for _, s := range orders {
		if s.evs[0].Version != 1 {
			lockOrders = append(lockOrders, s)
			continue
		}
		newOrders = append(newOrders, s)
		r := OrderRow{}
		for _, e := range s.evs {
			r = evolveOrder(r, e)
		}
		if err := orderRows.add(r, 0); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range accounts {
		if s.evs[0].Version != 1 {
			lockAccounts = append(lockAccounts, s)
			continue
		}
		newAccounts = append(newAccounts, s)
		var (
			r    AccountRow
			act  ActivityRow
			acts activityCols
		)
		for _, e := range s.evs {
			r, act = evolveAccount(r, e)
			acts.add(act)
		}
		accountRows.add(r, 0)
		activity = append(activity, acts)
	}
	if len(newOrders)+len(newAccounts) == 0 {
		return lockOrders, lockAccounts, nil
	}
	insertedOrders := map[uuid.UUID]bool{}
	insertedAccounts := map[uuid.UUID]bool{}
	b := &pgx.Batch{}
	if len(newOrders) > 0 {
		b.Queue(insertOrdersSQL, orderRows.args()...).Query(collectIDs(insertedOrders))
	}
	if len(newAccounts) > 0 {
		b.Queue(insertAccountsSQL, accountRows.args()...).Query(collectIDs(insertedAccounts))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("insert new streams: %w", err)
	}
	for _, s := range newOrders {
		if insertedOrders[s.id] {
			w.res.count(s.evs)
		} else {
			lockOrders = append(lockOrders, s)
		}
	}
	for i, s := range newAccounts {
		if insertedAccounts[s.id] {
			w.res.count(s.evs)
			w.activity.append(activity[i])
		} else {
			lockAccounts = append(lockAccounts, s)
		}
	}
	// Both lists must stay in id order: it is the lock order.
	byKey := func(a, b *stream) int { return compareUUID(a.id, b.id) }
	slices.SortFunc(lockOrders, byKey)
	slices.SortFunc(lockAccounts, byKey)
	return lockOrders, lockAccounts, nil
}

func collectIDs(into map[uuid.UUID]bool) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			into[id] = true
		}
		return rows.Err()
	}
}

// lockAndFold locks the existing rows of the given streams (FOR NO KEY UPDATE, in
// id order, one round trip), skips the events each row already reflects and
// folds the rest onto the row.
func (w *writes) lockAndFold(ctx context.Context, tx pgx.Tx, orders, accounts []*stream) error {
	if len(orders)+len(accounts) == 0 {
		return nil
	}
	curOrders := make(map[uuid.UUID]OrderRow, len(orders))
	curAccounts := make(map[uuid.UUID]AccountRow, len(accounts))
	b := &pgx.Batch{}
	if len(orders) > 0 {
		b.Queue(lockOrdersSQL, streamIDs(orders)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanOrder(rows)
				if err != nil {
					return err
				}
				curOrders[r.OrderID] = r
			}
			return rows.Err()
		})
	}
	if len(accounts) > 0 {
		b.Queue(lockAccountsSQL, streamIDs(accounts)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanAccount(rows)
				if err != nil {
					return err
				}
				curAccounts[r.AccountID] = r
			}
			return rows.Err()
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("lock rows: %w", err)
	}
	for _, s := range orders {
		r := curOrders[s.id]
		todo := w.pending(s, r.Version)
		if len(todo) == 0 {
			continue
		}
		prev := r.Version
		for _, e := range todo {
			r = evolveOrder(r, e)
		}
		if err := w.orderUpdates.add(r, prev); err != nil {
			return err
		}
		w.res.count(todo)
	}
	for _, s := range accounts {
		r := curAccounts[s.id]
		todo := w.pending(s, r.Version)
		if len(todo) == 0 {
			continue
		}
		prev := r.Version
		var act ActivityRow
		for _, e := range todo {
			r, act = evolveAccount(r, e)
			w.activity.add(act)
		}
		w.accountUpdates.add(r, prev)
		w.res.count(todo)
	}
	return nil
}

// pending is the part of s.evs after stored, or nothing when the row is not
// at a version the batch continues (an absent row is never created here:
// creation happens in insertNew).
func (w *writes) pending(s *stream, stored int64) []events.Envelope {
	i, _ := slices.BinarySearchFunc(s.evs, stored+1, func(e events.Envelope, v int64) int { return int(e.Version - v) })
	todo := s.evs[i:]
	if stored == 0 || len(todo) == 0 || todo[0].Version != stored+1 {
		w.res.Skipped += len(s.evs)
		return nil
	}
	w.res.Skipped += i
	return todo
}

func streamIDs(ss []*stream) []pgtype.UUID {
	ids := make([]pgtype.UUID, len(ss))
	for i, s := range ss {
		ids[i] = postgres.UUID(s.id)
	}
	return ids
}

// flush writes the updates, the activity rows, the change notice and the
// checkpoint in one pipelined round trip. Every updated row is locked by
// this transaction, so an update that misses its version means a bug, not
// a race: it fails.
func (w *writes) flush(ctx context.Context, tx pgx.Tx, orders, accounts []*stream) error {
	if w.res.Applied == 0 {
		return nil
	}
	b := &pgx.Batch{}
	expect := func(what string, n int) func(pgconn.CommandTag) error {
		return func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != int64(n) {
				return fmt.Errorf("%s: %d of %d rows were at the expected version", what, ct.RowsAffected(), n)
			}
			return nil
		}
	}
	if n := len(w.orderUpdates.ids); n > 0 {
		b.Queue(updateOrdersSQL, w.orderUpdates.args()...).Exec(expect("update orders_view", n))
	}
	if n := len(w.accountUpdates.ids); n > 0 {
		b.Queue(updateAccountsSQL, w.accountUpdates.args()...).Exec(expect("update accounts_balance", n))
	}
	if n := len(w.activity.ids); n > 0 {
		b.Queue(upsertActivitySQL, w.activity.args()...).Exec(expect("write account_activity", n))
	}
	queueChangeNotice(b, orders, accounts)
	b.Queue(checkpointSQL, ordersdb.Projection, w.res.Position, w.res.Applied)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write changes: %w", err)
	}
	return nil
}
