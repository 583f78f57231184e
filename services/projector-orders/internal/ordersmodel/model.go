// Package ordersmodel is projector-orders' read model in Postgres:
// orders_view (also the per-customer order list), accounts_balance,
// account_activity and the "orders" row of projection_checkpoints, with the
// schema of internal/readmodel/ordersdb.
//
// Every row stores the version of its stream it reflects, and Apply changes
// a row only while it holds the row's lock and the stored version is the one
// just before the events it applies. Two replicas that briefly consume the
// same partition (a rebalance) therefore never apply an event twice: the
// loser of the race finds the version moved and skips what was done.
package ordersmodel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
)

// DB is what the model needs from Postgres; *pgxpool.Pool and *pgx.Conn
// satisfy it. Not a pgx.Tx: the fast path relies on a batch's implicit
// transaction, which a surrounding transaction would swallow.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Model implements consumer.Model over the ordersdb tables. It is safe for
// concurrent use, also by several processes.
type Model struct {
	db DB
}

// New returns a model over db. The tables must exist (ordersdb.Migrate).
func New(db DB) *Model { return &Model{db: db} }

// Result counts what one ApplyBatch did. Skipped events were already
// applied (by an earlier delivery or another replica) or follow a version
// the model does not have; they are left for redelivery or gap healing.
type Result struct {
	Applied  int
	Skipped  int
	Position int64 // highest position applied; 0 when nothing was
	// Locked reports that some row was not at the version the batch
	// continues, so the batch was applied with row locks (see ApplyBatch).
	Locked bool
}

const versionsSQL = `
SELECT order_id, version FROM orders_view WHERE order_id = ANY($1::uuid[])
UNION ALL
SELECT account_id, version FROM accounts_balance WHERE account_id = ANY($1::uuid[])`

// Versions returns the stored version of each stream that has a row, in one
// query over both tables; absent streams are absent from the map (version 0).
func (m *Model) Versions(ctx context.Context, streamIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	out := make(map[uuid.UUID]int64, len(streamIDs))
	if len(streamIDs) == 0 {
		return out, nil
	}
	ids := make([]pgtype.UUID, len(streamIDs))
	for i, id := range streamIDs {
		ids[i] = postgres.UUID(id)
	}
	rows, err := m.db.Query(ctx, versionsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("read versions of %d streams: %w", len(streamIDs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uuid.UUID
			v  int64
		)
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("read versions: %w", err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	return out, nil
}

// Apply implements consumer.Model; see ApplyBatch.
func (m *Model) Apply(ctx context.Context, evs []events.Envelope) error {
	_, err := m.ApplyBatch(ctx, evs)
	return err
}

// TryApply implements consumer.Optimist with ApplyBatch's fast path: when
// every stream of evs continues from its stored version, evs are applied in
// one round trip; otherwise nothing is, and every flag is false.
func (m *Model) TryApply(ctx context.Context, evs []events.Envelope) ([]bool, error) {
	done := make([]bool, len(evs))
	if len(evs) == 0 {
		return done, nil
	}
	orders, accounts, err := group(evs)
	if err != nil {
		// Not contiguous within the batch (a redelivery overlapping it),
		// or invalid: the Sequencer's path sorts that out, or reports it.
		return done, nil
	}
	switch _, err := m.applyFast(ctx, orders, accounts); {
	case errors.Is(err, errNotAtExpectedVersion):
		return done, nil
	case err != nil:
		return nil, fmt.Errorf("apply %d events to the %s read model: %w", len(evs), ordersdb.Projection, err)
	}
	for i := range done {
		done[i] = true
	}
	return done, nil
}

// stream is the part of a batch that belongs to one aggregate.
type stream struct {
	id  uuid.UUID
	typ events.StreamType
	evs []events.Envelope
}

// ApplyBatch applies evs in one transaction. Per stream, evs must be in
// version order without holes. Events at or below a row's stored version
// are skipped, the rest applied from there; a stream whose stored version
// is further behind than the batch's first event is skipped whole (another
// writer reset it; the Sequencer heals it on the next delivery). An event
// that can never be applied fails the batch with ErrInvalidEvent.
//
// The common case, where every stream continues from the version just
// before the batch (what the Sequencer hands over), takes one round trip:
// a pipeline, run in the server's implicit transaction, of conditional
// inserts and updates that check-and-set each row's version, the activity
// rows and the checkpoint (applyFast). If any row is not at the expected
// version (another replica got there first, or the caller passed
// overlapping events), the server aborts that transaction and the batch is
// redone in an explicit one that locks the rows first and continues each
// stream from its stored version (applyLocked). Both take row locks in the
// same global order (inserts, then updates; orders, then accounts; by id),
// so replicas applying overlapping batches wait for each other but never
// deadlock.
func (m *Model) ApplyBatch(ctx context.Context, evs []events.Envelope) (Result, error) {
	if len(evs) == 0 {
		return Result{}, nil
	}
	orders, accounts, err := group(evs)
	if err != nil {
		return Result{}, err
	}
	res, err := m.applyFast(ctx, orders, accounts)
	if errors.Is(err, errNotAtExpectedVersion) {
		res, err = m.applyLocked(ctx, orders, accounts)
		res.Locked = true
	}
	if err != nil {
		return Result{}, fmt.Errorf("apply %d events to the %s read model: %w", len(evs), ordersdb.Projection, err)
	}
	return res, nil
}

// group splits evs by stream (each group sorted by id, which is the lock
// order) and rejects events that can never be applied.
func group(evs []events.Envelope) (orders, accounts []*stream, err error) {
	byID := make(map[uuid.UUID]*stream, len(evs))
	for _, e := range evs {
		if err := validate(e); err != nil {
			return nil, nil, err
		}
		s := byID[e.StreamID]
		if s == nil {
			s = &stream{id: e.StreamID, typ: e.StreamType}
			byID[e.StreamID] = s
			if s.typ == events.StreamOrder {
				orders = append(orders, s)
			} else {
				accounts = append(accounts, s)
			}
		} else {
			if s.typ != e.StreamType {
				return nil, nil, fmt.Errorf("%w: stream %s is both %s and %s", ErrInvalidEvent, e.StreamID, s.typ, e.StreamType)
			}
			if last := s.evs[len(s.evs)-1].Version; e.Version != last+1 {
				return nil, nil, fmt.Errorf("%w: stream %s has version %d after %d in one batch", ErrInvalidEvent, e.StreamID, e.Version, last)
			}
		}
		s.evs = append(s.evs, e)
	}
	byKey := func(a, b *stream) int { return compareUUID(a.id, b.id) }
	slices.SortFunc(orders, byKey)
	slices.SortFunc(accounts, byKey)
	return orders, accounts, nil
}

// Transient reports failures that mean Postgres is unreachable, restarting
// or overloaded, or that the transaction lost a race it can simply retry:
// the consumer retries those without end instead of dead-lettering events.
func (m *Model) Transient(err error) bool {
	return !errors.Is(err, ErrInvalidEvent) && postgres.Retryable(err)
}
