package ordersmodel

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
)

// errNotAtExpectedVersion rolls back applyFast: some row was not at the
// version the batch continues, or an event's effect cannot be written
// without reading the row first.
var errNotAtExpectedVersion = errors.New("a row is not at the version the batch continues")

// sqlstateNotAtVersion is what readmodel_expect_rows (ordersdb migration
// 0002) raises.
const sqlstateNotAtVersion = "RM409"

func isNotAtExpectedVersion(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlstateNotAtVersion
}

// applyFast applies the batch on the assumption that every stream is stored
// at the version just before its first event in the batch: new streams are
// inserted whole (ON CONFLICT DO NOTHING), the others updated with a
// version condition and with changes that need no read of the row (a status,
// a balance delta), the activity rows written in the same statements, and
// the checkpoint last; all in one round trip, in the implicit transaction
// of a pipeline. Locks are taken in the same order as in applyLocked:
// inserts, then the rows to update, each sorted by id, orders before
// accounts. A single row missing its condition makes the server roll
// everything back (RM409), and applyFast return errNotAtExpectedVersion.
func (m *Model) applyFast(ctx context.Context, orders, accounts []*stream) (Result, error) {
	var (
		res                  Result
		newOrders            orderCols
		newAccounts          accountCols
		newActivity          activityCols
		orderSteps           orderStepCols
		accountSteps         accountStepCols
		stepActivity         activityStepCols
		nNewOrders, nOrders  int
		nNewAccts, nAccounts int
	)
	for _, s := range orders {
		if s.evs[0].Version == 1 {
			r := OrderRow{}
			for _, e := range s.evs {
				r = evolveOrder(r, e)
			}
			if err := newOrders.add(r, 0); err != nil {
				return Result{}, err
			}
			nNewOrders++
		} else {
			if !orderSteps.add(s) {
				return Result{}, errNotAtExpectedVersion
			}
			nOrders++
		}
		res.count(s.evs)
	}
	for _, s := range accounts {
		if s.evs[0].Version == 1 {
			var (
				r   AccountRow
				act ActivityRow
			)
			for _, e := range s.evs {
				r, act = evolveAccount(r, e)
				newActivity.add(act)
			}
			newAccounts.add(r, 0)
			nNewAccts++
		} else {
			if !accountSteps.add(s, &stepActivity) {
				return Result{}, errNotAtExpectedVersion
			}
			nAccounts++
		}
		res.count(s.evs)
	}

	// One round trip: the statements run in the implicit transaction of a
	// pipeline, and each checked one aborts it from within the server when
	// it changed fewer rows than expected (readmodel_expect_rows, SQLSTATE
	// RM409): a client-side check would come after the commit.
	b := &pgx.Batch{}
	if nNewOrders > 0 {
		b.Queue(insertOrdersCheckedSQL, append(newOrders.args(), nNewOrders)...)
	}
	if nNewAccts > 0 {
		b.Queue(insertAccountsWithActivitySQL, append(append(newAccounts.args(), newActivity.args()...), nNewAccts)...)
	}
	// An UPDATE joined to unnest locks rows in whatever order its plan
	// visits them (a hash join: physical order), so the rows are locked
	// first, sorted, and the updates then only touch rows already held.
	if nOrders > 0 {
		b.Queue(lockOrderVersionsSQL, orderSteps.ids)
	}
	if nAccounts > 0 {
		b.Queue(lockAccountVersionsSQL, accountSteps.ids)
	}
	if nOrders > 0 {
		b.Queue(stepOrdersSQL, append(orderSteps.args(), nOrders)...)
	}
	if nAccounts > 0 {
		b.Queue(stepAccountsSQL, append(append(accountSteps.args(), stepActivity.args()...), nAccounts)...)
	}
	queueChangeNotice(b, orders, accounts)
	b.Queue(checkpointSQL, ordersdb.Projection, res.Position, res.Applied)
	if err := m.db.SendBatch(ctx, b).Close(); err != nil {
		if isNotAtExpectedVersion(err) {
			return Result{}, errNotAtExpectedVersion
		}
		return Result{}, err
	}
	return res, nil
}

// count records evs as applied.
func (r *Result) count(evs []events.Envelope) {
	r.Applied += len(evs)
	for _, e := range evs {
		r.Position = max(r.Position, e.Position)
	}
}

// orderEffect is the status a continuing order event sets, as the Order
// aggregate's Evolve decides it. ok is false for events whose effect is
// more than a status: those take the locking path, which folds whole rows.
func orderEffect(e events.Envelope) (status string, ok bool) {
	switch e.Data.(type) {
	case events.OrderPaid, events.OrderShipped, events.OrderCancelled:
		return string(order.Evolve(order.State{}, e).Status), true
	}
	return "", false
}

// accountEffect is what a continuing account event does to the balance
// (a delta) and the status ("" when unchanged), as the Account aggregate's
// Evolve decides it; ok is false for events whose effect is more than that.
func accountEffect(e events.Envelope) (delta int64, status string, ok bool) {
	switch e.Data.(type) {
	case events.FundsDeposited, events.FundsWithdrawn, events.DepositReversed, events.AccountClosed:
		s := account.Evolve(account.State{Status: account.StatusOpen}, e)
		if s.Status != account.StatusOpen {
			status = string(s.Status)
		}
		return s.BalanceCents, status, true
	}
	return 0, "", false
}

// orderStepCols holds, column by column, the change of each continuing
// order: the status after the batch (NULL: unchanged) and the version,
// position and time of its last event.
type orderStepCols struct {
	ids                       []pgtype.UUID
	statuses                  []*string
	versions, positions, prev []int64
	updated                   []time.Time
}

func (c *orderStepCols) add(s *stream) bool {
	var status *string
	for _, e := range s.evs {
		st, ok := orderEffect(e)
		if !ok {
			return false
		}
		status = &st
	}
	last := s.evs[len(s.evs)-1]
	c.ids = append(c.ids, postgres.UUID(s.id))
	c.statuses = append(c.statuses, status)
	c.versions = append(c.versions, last.Version)
	c.positions = append(c.positions, last.Position)
	c.updated = append(c.updated, dbTime(last.RecordedAt))
	c.prev = append(c.prev, s.evs[0].Version-1)
	return true
}

func (c *orderStepCols) args() []any {
	return []any{c.ids, c.statuses, c.versions, c.positions, c.updated, c.prev}
}

const (
	lockOrderVersionsSQL   = `SELECT 1 FROM orders_view WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR NO KEY UPDATE`
	lockAccountVersionsSQL = `SELECT 1 FROM accounts_balance WHERE account_id = ANY($1::uuid[]) ORDER BY account_id FOR NO KEY UPDATE`
)

// insertOrdersCheckedSQL inserts new orders and fails the batch unless
// every one of them ($14) was new.
const insertOrdersCheckedSQL = `WITH ins AS (` + insertOrdersSQL + `)
SELECT readmodel_expect_rows(count(*), $14) FROM ins`

// stepOrdersSQL updates continuing orders and fails the batch unless every
// one of them ($7) was at the version before the batch.
const stepOrdersSQL = `WITH upd AS (
	UPDATE orders_view AS o SET
		status = coalesce(u.status, o.status), version = u.version, last_position = u.last_position, updated_at = u.updated_at
	FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[])
		AS u(order_id, status, version, last_position, updated_at, prev_version)
	WHERE o.order_id = u.order_id AND o.version = u.prev_version
	RETURNING o.order_id
)
SELECT readmodel_expect_rows(count(*), $7) FROM upd`

// accountStepCols holds the change of each continuing account: the sum of
// its balance deltas, the status after the batch (NULL: unchanged), and the
// version, position and time of its last event.
type accountStepCols struct {
	ids                               []pgtype.UUID
	deltas, versions, positions, prev []int64
	statuses                          []*string
	updated                           []time.Time
}

// activityStepCols holds the activity rows of continuing accounts. The
// balance before the batch is not known without reading the row, so each
// row carries the sum of the deltas after it: balance_after = the row's new
// balance - that sum.
type activityStepCols struct {
	activityCols
	after []int64
}

func (c *accountStepCols) add(s *stream, acts *activityStepCols) bool {
	deltas := make([]int64, len(s.evs))
	var (
		total  int64
		status *string
	)
	for i, e := range s.evs {
		d, st, ok := accountEffect(e)
		if !ok {
			return false
		}
		deltas[i] = d
		total += d
		if st != "" {
			status = &st
		}
	}
	after := total
	for i, e := range s.evs {
		after -= deltas[i]
		acts.add(ActivityRow{AccountID: s.id, Version: e.Version, Position: e.Position, Type: e.Type,
			AmountCents: deltas[i], Description: Describe(e.Data), RecordedAt: dbTime(e.RecordedAt)})
		acts.after = append(acts.after, after)
	}
	last := s.evs[len(s.evs)-1]
	c.ids = append(c.ids, postgres.UUID(s.id))
	c.deltas = append(c.deltas, total)
	c.statuses = append(c.statuses, status)
	c.versions = append(c.versions, last.Version)
	c.positions = append(c.positions, last.Position)
	c.updated = append(c.updated, dbTime(last.RecordedAt))
	c.prev = append(c.prev, s.evs[0].Version-1)
	return true
}

func (c *accountStepCols) args() []any {
	return []any{c.ids, c.deltas, c.statuses, c.versions, c.positions, c.updated, c.prev}
}

func (c *activityStepCols) args() []any {
	return []any{c.ids, c.versions, c.positions, c.types, c.amounts, c.after, c.descriptions, c.recorded}
}

// stepAccountsSQL updates the balances and writes their activity rows in
// one statement, and fails the batch unless every account ($16) was at the
// version before the batch.
const stepAccountsSQL = `WITH upd AS (
	UPDATE accounts_balance AS a SET
		balance_cents = a.balance_cents + u.delta, status = coalesce(u.status, a.status),
		version = u.version, last_position = u.last_position, updated_at = u.updated_at
	FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::bigint[])
		AS u(account_id, delta, status, version, last_position, updated_at, prev_version)
	WHERE a.account_id = u.account_id AND a.version = u.prev_version
	RETURNING a.account_id, a.balance_cents
), act AS (
	INSERT INTO account_activity (` + activityColumns + `)
	SELECT x.account_id, x.version, x.position, x.type, x.amount_cents, upd.balance_cents - x.after_delta, x.description, x.recorded_at
	FROM unnest($8::uuid[], $9::bigint[], $10::bigint[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::timestamptz[])
		AS x(account_id, version, position, type, amount_cents, after_delta, description, recorded_at)
	JOIN upd ON upd.account_id = x.account_id
	` + activityConflict + `
)
SELECT readmodel_expect_rows(count(*), $16) FROM upd`

// insertAccountsWithActivitySQL inserts new accounts and, for those it did
// insert, their activity rows, and fails the batch unless every account
// ($18) was new.
const insertAccountsWithActivitySQL = `WITH ins AS (` + insertAccountsSQL + `
), act AS (
	INSERT INTO account_activity (` + activityColumns + `)
	SELECT x.* FROM unnest($10::uuid[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::timestamptz[])
		AS x(account_id, version, position, type, amount_cents, balance_after_cents, description, recorded_at)
	JOIN ins ON ins.account_id = x.account_id
	` + activityConflict + `
)
SELECT readmodel_expect_rows(count(*), $18) FROM ins`

// queueChangeNotice names the batch's streams on ordersdb.ChangesChannel, in
// the transaction that writes them: the query API's ?min_version reads of
// those rows wake when it commits. A stream the batch turns out to skip
// (already applied) costs such a read one needless look.
func queueChangeNotice(b *pgx.Batch, orders, accounts []*stream) {
	ids := make([]uuid.UUID, 0, len(orders)+len(accounts))
	for _, s := range orders {
		ids = append(ids, s.id)
	}
	for _, s := range accounts {
		ids = append(ids, s.id)
	}
	b.Queue(ordersdb.NotifyChangesSQL, ordersdb.ChangesChannel, ordersdb.ChangePayloads(ids))
}
