// Package rebuilder rebuilds projector-orders' Postgres read models
// (orders_view, accounts_balance, account_activity) from the event store
// while the live projector keeps consuming and queries keep being served,
// and replays the live model from a position. It plugs the model into the
// shared protocol of internal/rebuild:
//
//   - Prepare drops the leftovers of an aborted rebuild and creates empty
//     orders_view_rebuild, accounts_balance_rebuild and
//     account_activity_rebuild, shaped like the live tables (ordinary logged
//     tables: they become the live ones).
//   - Fill folds the store, in commit-safe order, in memory with the
//     model's own fold (ordersmodel.Folder, the Account and Order
//     aggregates' Evolve) and COPYs the account_activity rows as they come,
//     and an order's row once the order is final (see fill).
//   - Swap first COPYs the other order rows and the account rows from
//     memory and builds their indexes (after the data: cheaper than maintaining them
//     row by row), then, in one transaction, locks the live tables, renames
//     them (and their indexes) away and the fresh ones into their names, and
//     moves the "orders" checkpoint forward; the replaced tables are dropped
//     after the catch-up.
//   - Live is a Sequencer over the live tables: the catch-up after the swap
//     applies what was appended since the fill, skipping by version what
//     the live projector applied meanwhile (internal/rebuild reads until
//     it is past every write transaction older than the swap).
//
// The store is read by a Reader: the store's commit-safe order, fewer
// columns, read ahead and decoded in parallel.
//
// One rebuild runs at a time per database: a session advisory lock taken
// in Prepare guards it, so a second one (the CLI while the admin endpoint's
// runs, another replica) fails fast instead of dropping the first one's
// tables.
package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// Store is the event store as a rebuild reads it: the whole store in
// commit-safe order, and single streams to heal gaps.
type Store interface {
	rebuild.Store
	consumer.StreamReader
	// ReadAllForProjection is ReadAll without the columns no model reads
	// (see eventstore.Store.ReadAllForProjection): the fill's reads.
	ReadAllForProjection(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error)
}

// ErrAlreadyRunning is returned when another rebuild of the same database
// holds the rebuild lock.
var ErrAlreadyRunning = errors.New("another rebuild of the orders read model is running")

// lockKey is the advisory lock of a rebuild (an arbitrary constant unique
// to this model: "ORDRBLD" in ASCII).
const lockKey int64 = 0x4f5244524c4244

// streamTypes are the streams the model consumes.
var streamTypes = []events.StreamType{events.StreamOrder, events.StreamAccount}

// Rebuilder rebuilds and replays the orders read model in the database of
// pool (the event store's database, where the model lives). It is safe for
// concurrent use.
type Rebuilder struct {
	store     Store
	pool      *pgxpool.Pool
	log       *slog.Logger
	metrics   *consumer.Metrics
	batchSize int
}

// Option configures a Rebuilder.
type Option func(*Rebuilder)

// WithBatchSize sets how many events one read of the store returns
// (default 5000).
func WithBatchSize(n int) Option { return func(r *Rebuilder) { r.batchSize = n } }

// OpenPool opens the connection pool a Rebuilder should write through in a
// projector process: a pool of its own, so that a rebuild's COPYs, index
// builds and reads never take the connections the live consumer applies
// with. A rebuild uses at most five connections at once.
func OpenPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("rebuild pool: %w", err)
	}
	cfg.MaxConns = 6
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("rebuild pool: %w", err)
	}
	return pool, nil
}

// New returns a Rebuilder reading store and writing through pool (see
// OpenPool); the read model lives in pool's database.
func New(store Store, pool *pgxpool.Pool, log *slog.Logger, opts ...Option) *Rebuilder {
	r := &Rebuilder{store: store, pool: pool, log: log, batchSize: 5000,
		// The live consumer registers its metrics under the same names on
		// the process registry; the rebuild's catch-up counts apart.
		metrics: consumer.NewMetrics(prometheus.NewRegistry(), "projector-orders-rebuild")}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Result describes a finished rebuild.
type Result struct {
	Events   int64 // events folded by the fill
	Position int64 // the highest position the fill folded
	Orders   int64 // rows written to the fresh tables
	Accounts int64
	Activity int64
	// FillDuration is from the end of Prepare to the start of Swap: reading,
	// folding and writing account_activity.
	FillDuration time.Duration
	// FinishDuration is the part of Swap before its transaction: the final
	// order and account rows, indexes and statistics.
	FinishDuration time.Duration
	// SwapDuration is the swap transaction, retries included: how long the
	// live tables were locked at most.
	SwapDuration time.Duration
	// SwapAttempts counts the swap transactions: more than one when
	// queries held the live tables longer than the lock timeout.
	SwapAttempts int
}

// Rebuild rebuilds the model from the whole store and swaps it in. tr
// receives the progress; report (may be nil) is called about once a second.
func (r *Rebuilder) Rebuild(ctx context.Context, tr *rebuild.Tracker, report func(rebuild.Progress)) (Result, error) {
	var res Result
	rd := r.newReader()
	t := &target{r: r, res: &res}
	// Everything that can fail happens inside Run, so that tr always ends
	// "done" or "failed" (the admin endpoint refuses new jobs until then).
	err := rebuild.Run(ctx, rd, t, tr, rebuild.Options{BatchSize: r.batchSize, StreamTypes: streamTypes, Report: report, Log: r.log})
	rd.Close()
	if t.fill != nil {
		t.fill.abort() // a no-op after a swap; stops the writer of a failed fill
	}
	if t.unlock != nil {
		// Clean up even when ctx has ended. The tables replaced by a swap
		// (there are none if no swap happened: it is one transaction) are
		// dropped now that the catch-up is done; the DROP waits for queries
		// that still run on them. After a failure before the swap, what the
		// fill wrote is of no use to anyone; after one in the catch-up, the
		// fresh tables are live and there is nothing to drop.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, derr := r.pool.Exec(cctx, dropSQL(oldName)+"; "+dropSQL(rebuildName)); derr != nil {
			// The next rebuild drops the leftovers.
			r.log.Warn("rebuild: drop the replaced or unfinished tables", "error", derr)
		}
		t.unlock()
	}
	if err != nil {
		return res, fmt.Errorf("rebuild the orders read model: %w", err)
	}
	return res, nil
}

// Replay applies every event after position from to the live tables
// through a Sequencer: events the tables have are skipped by version, and a
// stream the tables lack (or hold at an older version) is healed from the
// store first. It returns how many events after from it handed to the
// Sequencer (the progress counts every event read: the commit-safe order is
// not position order, so the whole store is read and filtered).
func (r *Rebuilder) Replay(ctx context.Context, from int64, tr *rebuild.Tracker, report func(rebuild.Progress)) (int64, error) {
	rd := r.newReader()
	sink := &counting{next: r.live()}
	err := rebuild.Replay(ctx, rd, sink, from, tr, rebuild.Options{BatchSize: r.batchSize, StreamTypes: streamTypes, Report: report, Log: r.log})
	rd.Close()
	if err != nil {
		return sink.n, fmt.Errorf("replay the orders read model from position %d: %w", from, err)
	}
	return sink.n, nil
}

type counting struct {
	next rebuild.Sink
	n    int64
}

func (c *counting) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	if err := c.next.HandleBatch(ctx, batch); err != nil {
		return err
	}
	c.n += int64(len(batch))
	return nil
}

// Admin returns the admin endpoint (POST /admin/rebuild, POST
// /admin/replay?from_position=P, GET /admin/rebuild) whose jobs run under
// ctx, the process lifetime.
func (r *Rebuilder) Admin(ctx context.Context) *rebuild.Admin {
	return rebuild.NewAdmin(ctx, r.log,
		func(ctx context.Context, tr *rebuild.Tracker) error {
			_, err := r.Rebuild(ctx, tr, nil)
			return err
		},
		func(ctx context.Context, from int64, tr *rebuild.Tracker) error {
			_, err := r.Replay(ctx, from, tr, nil)
			return err
		})
}

func (r *Rebuilder) newReader() *Reader { return NewReader(r.store) }

func (r *Rebuilder) live() rebuild.Sink {
	return consumer.NewSequencer(ordersmodel.New(r.pool), r.store, r.metrics)
}

// lock takes the rebuild's advisory lock on a connection held until unlock;
// if the process dies, the session ends and the lock with it.
func (r *Rebuilder) lock(ctx context.Context) (unlock func(), err error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("rebuild lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, ErrAlreadyRunning
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(cctx, `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
			// Unsure whether the session still holds it: close the session.
			_ = conn.Conn().Close(cctx)
		}
		conn.Release()
	}, nil
}
