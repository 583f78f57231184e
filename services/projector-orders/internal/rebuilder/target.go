package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/escqrs/platform/internal/platform/postgres/pgcopy"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/rebuild"
)

// target is the rebuild.Target of the Postgres model: the *_rebuild
// tables, filled by COPY and renamed into place.
type target struct {
	r       *Rebuilder
	res     *Result
	unlock  func() // releases the rebuild lock; nil until Prepare took it
	indexes map[string][]index
	analyze map[string][]string // the columns whose statistics ANALYZE computes
	fill    *fill
	filling time.Time
}

// indexedBeforeFill are the fresh tables whose indexes exist during the
// fill. account_activity is written during the fill, by a writer that is
// not what limits the fill's speed (reading and decoding the store is), so
// maintaining its primary key row by row costs the rebuild nothing
// measurable, whereas building it after the fill would add a second or so
// per million events to the swap's wait, in a transaction that holds back
// every commit-safe reader of the store (the outbox relay) while it runs.
// orders_view (partly during the fill, the rest before the swap) and
// accounts_balance (before the swap) get their indexes after the data:
// cheaper than row by row, and short.
var indexedBeforeFill = map[string]bool{"account_activity": true}

// Prepare drops what an aborted rebuild left, creates the fresh tables
// shaped like the live ones (columns, defaults, checks, privileges; the
// indexes now or after the data, see indexedBeforeFill) and starts the
// activity writer.
func (t *target) Prepare(ctx context.Context) error {
	pool := t.r.pool
	unlock, err := t.r.lock(ctx)
	if err != nil {
		return err
	}
	t.unlock = unlock
	if _, err := pool.Exec(ctx, dropSQL(rebuildName)+"; "+dropSQL(oldName)); err != nil {
		return fmt.Errorf("drop leftover tables: %w", err)
	}
	indexes, err := readIndexes(ctx, pool)
	if err != nil {
		return err
	}
	t.indexes = indexes
	if t.analyze, err = analyzeColumns(ctx, pool); err != nil {
		return err
	}
	for _, tb := range liveTables {
		// Not UNLOGGED: these tables become the live ones.
		sql := fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL EXCLUDING INDEXES)", quote(rebuildName(tb)), quote(tb))
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create %s: %w", rebuildName(tb), err)
		}
		grants, err := grantsSQL(ctx, pool, tb)
		if err != nil {
			return err
		}
		for _, g := range grants {
			if _, err := pool.Exec(ctx, g); err != nil {
				return fmt.Errorf("%s: %w", g, err)
			}
		}
	}
	for tb := range indexedBeforeFill {
		if err := t.createTableIndexes(ctx, tb); err != nil {
			return err
		}
	}
	t.fill = startFill(ctx, pool)
	t.filling = time.Now()
	return nil
}

// Fill implements rebuild.Target.
func (t *target) Fill() rebuild.Sink { return t.fill }

// Live implements rebuild.Target: the catch-up goes through a Sequencer
// over the live tables, as the live projector's events do.
func (t *target) Live() rebuild.Sink { return t.r.live() }

// Swap writes what the fill kept in memory, completes the fresh tables
// (indexes, statistics), then renames them into place in one transaction
// that also moves the checkpoint, and drops the replaced tables.
//
// Only the transaction blocks anyone: it takes ACCESS EXCLUSIVE locks on
// the live tables, so the live projector and readers wait for it (a few
// milliseconds of renames) and then see the new tables under the same
// names; statements that were waiting look the name up again once they get
// the lock, and prepared statements are re-planned. If the locks are not
// granted within swapLockTimeout (a long query holds the tables), the
// transaction gives up, so that the requests queued behind it do not wait
// longer, and is retried.
func (t *target) Swap(ctx context.Context) error {
	t.res.FillDuration = time.Since(t.filling)
	log := t.r.log
	start := time.Now()
	if err := t.fill.flush(ctx); err != nil {
		return err
	}
	log.Info("rebuild: rows of the fill written", "wait", time.Since(start).String())
	t.res.Events, t.res.Position, t.res.Activity = t.fill.events, t.fill.position, t.fill.activity.rows
	if err := t.complete(ctx); err != nil {
		return err
	}
	t.res.FinishDuration = time.Since(start)

	swapStart := time.Now()
	for attempt := 1; ; attempt++ {
		t.res.SwapAttempts = attempt
		err := t.swapTx(ctx)
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		retry := errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01") // lock_not_available, deadlock_detected
		if !retry || attempt == swapAttempts {
			return fmt.Errorf("swap tables (attempt %d): %w", attempt, err)
		}
		log.Warn("rebuild: swap waited too long for the live tables; retrying", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second)):
		}
	}
	t.res.SwapDuration = time.Since(swapStart)
	log.Info("rebuild: tables swapped", "position", t.res.Position, "duration", t.res.SwapDuration.String())
	// The replaced tables are dropped after the catch-up (Rebuilder.Rebuild):
	// a DROP waits for queries still running on them, and neither the
	// catch-up nor anyone else needs to wait with it.
	return nil
}

// Each attempt of the swap waits at most swapLockTimeout for its locks;
// queries queued behind its lock request wait at most that long too.
const (
	swapLockTimeout = "300ms"
	swapAttempts    = 50
)

// swapCheckpointSQL moves the projection's position to what the fresh tables
// reflect, never back (the live projector may be ahead); events_applied
// stays the live projector's count.
const swapCheckpointSQL = `INSERT INTO projection_checkpoints (projection, position, events_applied, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (projection) DO UPDATE SET
	position = GREATEST(projection_checkpoints.position, EXCLUDED.position), updated_at = EXCLUDED.updated_at`

func (t *target) swapTx(ctx context.Context) error {
	return pgx.BeginFunc(ctx, t.r.pool, func(tx pgx.Tx) error {
		var qs []string
		for _, tb := range liveTables {
			qs = append(qs, quote(tb))
		}
		stmts := append([]string{
			"SET LOCAL lock_timeout = '" + swapLockTimeout + "'",
			"LOCK TABLE " + strings.Join(qs, ", ") + " IN ACCESS EXCLUSIVE MODE",
		}, swapSQL(t.indexes)...)
		b := &pgx.Batch{}
		for _, s := range stmts {
			b.Queue(s)
		}
		b.Queue(swapCheckpointSQL, ordersdb.Projection, t.res.Position, t.res.Events)
		return tx.SendBatch(ctx, b).Close()
	})
}

// complete writes the order rows the fill did not and the account rows,
// builds the indexes still missing and computes statistics, so that the
// first queries on the new tables are planned as well as on the old ones.
// Each table is done on its own connection, in parallel.
func (t *target) complete(ctx context.Context) error {
	orders, rewrite, accounts := t.fill.finalRows()
	t.res.Orders = t.fill.orders.rows - int64(len(rewrite)) + int64(len(orders))
	t.res.Accounts = int64(len(accounts))
	write := map[string]func(context.Context) error{
		"orders_view": func(ctx context.Context) error {
			if len(rewrite) > 0 { // rows written early, changed since
				if _, err := t.r.pool.Exec(ctx, "DELETE FROM "+quote(rebuildName("orders_view"))+" WHERE order_id = ANY($1)", rewrite); err != nil {
					return fmt.Errorf("replace %d early order rows: %w", len(rewrite), err)
				}
			}
			return copyRows(ctx, t.r.pool, rebuildName("orders_view"), orderColumns, len(orders), func(rows *pgcopy.Rows, i int) error {
				return appendOrder(rows, orders[i])
			})
		},
		"accounts_balance": func(ctx context.Context) error {
			return copyRows(ctx, t.r.pool, rebuildName("accounts_balance"), accountColumns, len(accounts), func(rows *pgcopy.Rows, i int) error {
				return appendAccount(rows, accounts[i])
			})
		},
	}
	return t.eachTable(ctx, func(ctx context.Context, tb string) error {
		start := time.Now()
		if w := write[tb]; w != nil {
			if err := w(ctx); err != nil {
				return err
			}
		}
		written := time.Now()
		if !indexedBeforeFill[tb] {
			if err := t.createTableIndexes(ctx, tb); err != nil {
				return err
			}
		}
		indexed := time.Now()
		if _, err := t.r.pool.Exec(ctx, analyzeSQL(tb, t.analyze[tb])); err != nil {
			return fmt.Errorf("analyze %s: %w", rebuildName(tb), err)
		}
		t.r.log.Info("rebuild: table complete", "table", rebuildName(tb), "write", written.Sub(start).String(),
			"indexes", indexed.Sub(written).String(), "analyze", time.Since(indexed).String())
		return nil
	})
}

// createTableIndexes gives the fresh table the live table's indexes.
func (t *target) createTableIndexes(ctx context.Context, tb string) error {
	for i, ix := range t.indexes[tb] {
		for _, s := range createIndexSQL(tb, i, ix) {
			if _, err := t.r.pool.Exec(ctx, s); err != nil {
				return fmt.Errorf("index %s: %s: %w", rebuildName(tb), s, err)
			}
		}
	}
	return nil
}

// eachTable runs f for every live table, in parallel.
func (t *target) eachTable(ctx context.Context, f func(ctx context.Context, table string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(liveTables))
	)
	for k, tb := range liveTables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[k] = f(ctx, tb); errs[k] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
