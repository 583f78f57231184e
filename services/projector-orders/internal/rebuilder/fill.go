package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/platform/postgres/pgcopy"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// copyChunk is how many rows one COPY statement writes. Each COPY is its
// own short transaction: a transaction in flight holds back every
// commit-safe reader of the event store (the outbox relay, this rebuild's
// own reads), which only read below the oldest running transaction, so one
// COPY for the whole fill would stall the relay for as long as the fill.
const copyChunk = 16384

// fill is the rebuild's Fill sink. It folds events in memory with the
// model's own fold (ordersmodel.Folder) and streams the rows that need no
// later change into the fresh tables as they come, in chunks, from writer
// goroutines, so that reading the store, folding and writing overlap:
// every account_activity row, and the orders_view row of an order once it
// is final (shipped or cancelled: the Order aggregate accepts no command
// after that). The other rows stay in memory until Swap writes them: that
// is the rebuild's memory bound, about 400 bytes per aggregate with
// realistic orders (measured: 130,000 streams of the benchmark's workload
// took 50 MB), so 500,000 aggregates take some 200 MB, and half as much
// again while the final rows are copied out. A model with tens of millions
// of aggregates would need the fold spilled to disk.
//
// Should an event follow an order's final one anyway (the store does not
// enforce the domain's rules), the order is marked changed and Swap
// replaces the row written early.
type fill struct {
	folder   *ordersmodel.Folder
	activity *writer[ordersmodel.ActivityRow]
	orders   *writer[ordersmodel.OrderRow]
	written  map[uuid.UUID]bool // orders whose row went out early; true: changed since

	events   int64
	position int64 // highest position folded
}

// activityConns is how many connections write account_activity during the
// fill. It has most of the rows, and its writer lagged behind the reading
// of the store; with two, the wait for it at the end of the fill went from
// 150-230 ms to 90-120 ms for 200,000 events (bench-rebuild -v).
const activityConns = 2

// startFill starts the writers on connections of their own from pool.
func startFill(ctx context.Context, pool *pgxpool.Pool) *fill {
	return &fill{
		folder:   ordersmodel.NewFolder(),
		activity: startWriter(ctx, pool, rebuildName("account_activity"), activityColumns, activityConns, appendActivity),
		orders:   startWriter(ctx, pool, rebuildName("orders_view"), orderColumns, 1, appendOrder),
		written:  map[uuid.UUID]bool{},
	}
}

// HandleBatch implements rebuild.Sink.
func (f *fill) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	for _, e := range batch {
		act, ok, err := f.folder.Apply(e)
		if err != nil {
			return fmt.Errorf("fold event %d: %w", e.Position, err)
		}
		f.events++
		f.position = max(f.position, e.Position)
		if ok {
			if err := f.activity.add(ctx, act); err != nil {
				return err
			}
		}
		if e.StreamType != events.StreamOrder {
			continue
		}
		if _, early := f.written[e.StreamID]; early {
			f.written[e.StreamID] = true
			continue
		}
		if row, _ := f.folder.Order(e.StreamID); order.Status(row.Status).Final() {
			f.written[e.StreamID] = false
			if err := f.orders.add(ctx, row); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes what is pending and waits for the writers to finish.
func (f *fill) flush(ctx context.Context) error {
	return errors.Join(f.activity.flush(ctx), f.orders.flush(ctx))
}

// abort stops the writers without waiting for what they have queued.
func (f *fill) abort() {
	f.activity.abort()
	f.orders.abort()
}

// finalRows hands over the order rows not written yet (those of orders
// changed after their early row included, listed in rewrite) and every
// account row, and drops the in-memory state.
func (f *fill) finalRows() (orders []ordersmodel.OrderRow, rewrite []uuid.UUID, accounts []ordersmodel.AccountRow) {
	for _, r := range f.folder.Orders() {
		changed, early := f.written[r.OrderID]
		if early && !changed {
			continue
		}
		if changed {
			rewrite = append(rewrite, r.OrderID)
		}
		orders = append(orders, r)
	}
	accounts = f.folder.Accounts()
	f.folder, f.written = nil, nil
	return orders, rewrite, accounts
}

// writer COPYs rows into one table in chunks of copyChunk, as they are
// added, from goroutines of its own, each on its own connection.
type writer[T any] struct {
	pending []T
	chunks  chan []T
	done    chan struct{} // closed when the goroutines have returned
	err     error         // the first goroutine error, set before done closes
	stop    context.CancelFunc
	closed  bool
	rows    int64 // rows handed to the goroutines
}

func startWriter[T any](ctx context.Context, pool *pgxpool.Pool, table string, columns []string, conns int, appendRow func(*pgcopy.Rows, T) error) *writer[T] {
	ctx, stop := context.WithCancel(ctx)
	w := &writer[T]{chunks: make(chan []T, 2), done: make(chan struct{}), stop: stop}
	var (
		wg   sync.WaitGroup
		once sync.Once
	)
	for range conns {
		wg.Go(func() {
			for chunk := range w.chunks {
				if err := copyRows(ctx, pool, table, columns, len(chunk), func(rows *pgcopy.Rows, i int) error {
					return appendRow(rows, chunk[i])
				}); err != nil {
					once.Do(func() { w.err = err })
					stop() // the other connections stop too
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(w.done) // the sender sees it closed
	}()
	return w
}

func (w *writer[T]) add(ctx context.Context, row T) error {
	w.pending = append(w.pending, row)
	if len(w.pending) < copyChunk {
		return nil
	}
	return w.send(ctx)
}

func (w *writer[T]) send(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	select {
	case w.chunks <- w.pending:
		w.rows += int64(len(w.pending))
		w.pending = make([]T, 0, copyChunk)
		return nil
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes what is pending and waits for the goroutine to finish.
func (w *writer[T]) flush(ctx context.Context) error {
	err := w.send(ctx)
	w.close()
	<-w.done
	if w.err != nil {
		return w.err
	}
	return err
}

// close stops taking chunks; it is safe to call more than once.
func (w *writer[T]) close() {
	if !w.closed {
		w.closed = true
		close(w.chunks)
	}
}

// abort stops the goroutine without waiting for what it has queued.
func (w *writer[T]) abort() {
	w.stop()
	w.close()
	<-w.done
}

// copyRows writes n rows into table, in COPY statements of copyChunk rows
// on one connection; appendRow appends row i (its columns in the order of
// columns).
func copyRows(ctx context.Context, pool *pgxpool.Pool, table string, columns []string, n int, appendRow func(rows *pgcopy.Rows, i int) error) error {
	if n == 0 {
		return nil
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("copy into %s: %w", table, err)
	}
	defer conn.Release()
	for lo := 0; lo < n; lo += copyChunk {
		hi := min(lo+copyChunk, n)
		if _, err := pgcopy.CopyFrom(ctx, conn.Conn().PgConn(), table, columns, hi-lo, func(rows *pgcopy.Rows, i int) error {
			return appendRow(rows, lo+i)
		}); err != nil {
			return err
		}
	}
	return nil
}

var (
	orderColumns = []string{"order_id", "customer_id", "status", "items", "tax_cents", "total_cents", "currency",
		"shipping_address", "version", "last_position", "placed_at", "updated_at"}
	accountColumns  = []string{"account_id", "owner", "balance_cents", "currency", "status", "version", "last_position", "updated_at"}
	activityColumns = []string{"account_id", "version", "position", "type", "amount_cents", "balance_after_cents", "description", "recorded_at"}
)

// The append functions write a row's columns in the order of the column
// lists above, with the tables' types (uuid, text, bigint, timestamptz,
// jsonb): a binary COPY is not checked against the names.

func appendActivity(rows *pgcopy.Rows, r ordersmodel.ActivityRow) error {
	rows.Row(len(activityColumns))
	rows.UUID(r.AccountID)
	rows.Int64(r.Version)
	rows.Int64(r.Position)
	rows.Text(r.Type)
	rows.Int64(r.AmountCents)
	rows.Int64(r.BalanceAfterCents)
	rows.Text(r.Description)
	rows.Time(r.RecordedAt)
	return nil
}

func appendAccount(rows *pgcopy.Rows, r ordersmodel.AccountRow) error {
	rows.Row(len(accountColumns))
	rows.UUID(r.AccountID)
	rows.Text(r.Owner)
	rows.Int64(r.BalanceCents)
	rows.Text(r.Currency)
	rows.Text(r.Status)
	rows.Int64(r.Version)
	rows.Int64(r.LastPosition)
	rows.Time(r.UpdatedAt)
	return nil
}

// appendOrder encodes the JSON columns as the live model does.
func appendOrder(rows *pgcopy.Rows, r ordersmodel.OrderRow) error {
	ib, ab, err := r.JSONColumns()
	if err != nil {
		return err
	}
	rows.Row(len(orderColumns))
	rows.UUID(r.OrderID)
	rows.UUID(r.CustomerID)
	rows.Text(r.Status)
	rows.JSONB(ib)
	rows.Int64(r.TaxCents)
	rows.Int64(r.TotalCents)
	rows.Text(r.Currency)
	if ab == nil {
		rows.Null()
	} else {
		rows.JSONB(ab)
	}
	rows.Int64(r.Version)
	rows.Int64(r.LastPosition)
	rows.Time(r.PlacedAt)
	rows.Time(r.UpdatedAt)
	return nil
}
