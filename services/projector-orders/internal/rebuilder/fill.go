package rebuilder

import (
	"context"
	"fmt"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/pgcopy"
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
// model's own fold (ordersmodel.Folder) and streams the account_activity
// rows, which need no later change, into the fresh table as they come, in
// chunks, from a writer goroutine, so that reading the store, folding and
// writing overlap. The latest order and account rows stay in memory until
// Swap writes them: that is the rebuild's memory bound, about 400 bytes per
// aggregate with realistic orders (measured: 130,000 streams of the
// benchmark's workload took 50 MB), so 500,000 aggregates take some 200 MB,
// and half as much again while the final rows are copied out. A model with
// tens of millions of aggregates would need the fold spilled to disk.
type fill struct {
	folder   *ordersmodel.Folder
	pending  []ordersmodel.ActivityRow
	chunks   chan []ordersmodel.ActivityRow
	done     chan struct{} // closed when the writer has returned
	writeErr error         // the writer's error, set before done closes
	stop     context.CancelFunc
	closed   bool

	events   int64
	position int64 // highest position folded
	activity int64
}

// startFill starts the writer on its own connection from pool.
func startFill(ctx context.Context, pool *pgxpool.Pool) *fill {
	ctx, stop := context.WithCancel(ctx)
	f := &fill{
		folder: ordersmodel.NewFolder(),
		chunks: make(chan []ordersmodel.ActivityRow, 2),
		done:   make(chan struct{}),
		stop:   stop,
	}
	go func() {
		defer close(f.done)
		for chunk := range f.chunks {
			if err := copyRows(ctx, pool, rebuildName("account_activity"), activityColumns, len(chunk), func(rows *pgcopy.Rows, i int) error {
				appendActivity(rows, chunk[i])
				return nil
			}); err != nil {
				f.writeErr = err // the sender sees done closed
				return
			}
		}
	}()
	return f
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
			f.pending = append(f.pending, act)
			if len(f.pending) >= copyChunk {
				if err := f.send(ctx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (f *fill) send(ctx context.Context) error {
	if len(f.pending) == 0 {
		return nil
	}
	select {
	case f.chunks <- f.pending:
		f.activity += int64(len(f.pending))
		f.pending = make([]ordersmodel.ActivityRow, 0, copyChunk)
		return nil
	case <-f.done:
		return fmt.Errorf("write account_activity: %w", f.writeErr)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes what is pending and waits for the writer to finish.
func (f *fill) flush(ctx context.Context) error {
	err := f.send(ctx)
	f.close()
	<-f.done
	if f.writeErr != nil {
		return fmt.Errorf("write account_activity: %w", f.writeErr)
	}
	return err
}

// close stops the writer; it is safe to call more than once.
func (f *fill) close() {
	if !f.closed {
		f.closed = true
		close(f.chunks)
	}
}

// abort stops the writer without waiting for what it has queued.
func (f *fill) abort() {
	f.stop()
	f.close()
	<-f.done
}

// finalRows hands over the latest order and account rows and drops the
// in-memory state.
func (f *fill) finalRows() ([]ordersmodel.OrderRow, []ordersmodel.AccountRow) {
	orders, accounts := f.folder.Orders(), f.folder.Accounts()
	f.folder = nil
	return orders, accounts
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

func appendActivity(rows *pgcopy.Rows, r ordersmodel.ActivityRow) {
	rows.Row(len(activityColumns))
	rows.UUID(r.AccountID)
	rows.Int64(r.Version)
	rows.Int64(r.Position)
	rows.Text(r.Type)
	rows.Int64(r.AmountCents)
	rows.Int64(r.BalanceAfterCents)
	rows.Text(r.Description)
	rows.Time(r.RecordedAt)
}

func appendAccount(rows *pgcopy.Rows, r ordersmodel.AccountRow) {
	rows.Row(len(accountColumns))
	rows.UUID(r.AccountID)
	rows.Text(r.Owner)
	rows.Int64(r.BalanceCents)
	rows.Text(r.Currency)
	rows.Text(r.Status)
	rows.Int64(r.Version)
	rows.Int64(r.LastPosition)
	rows.Time(r.UpdatedAt)
}

// appendOrder encodes the JSON columns as the live model does (items as a
// JSON array, never null; the address null when absent).
func appendOrder(rows *pgcopy.Rows, r ordersmodel.OrderRow) error {
	items := r.Items
	if items == nil {
		items = []events.LineItem{}
	}
	ib, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("encode items of order %s: %w", r.OrderID, err)
	}
	rows.Row(len(orderColumns))
	rows.UUID(r.OrderID)
	rows.UUID(r.CustomerID)
	rows.Text(r.Status)
	rows.JSONB(ib)
	rows.Int64(r.TaxCents)
	rows.Int64(r.TotalCents)
	rows.Text(r.Currency)
	if r.ShippingAddress == nil {
		rows.Null()
	} else {
		ab, err := json.Marshal(r.ShippingAddress)
		if err != nil {
			return fmt.Errorf("encode address of order %s: %w", r.OrderID, err)
		}
		rows.JSONB(ab)
	}
	rows.Int64(r.Version)
	rows.Int64(r.LastPosition)
	rows.Time(r.PlacedAt)
	rows.Time(r.UpdatedAt)
	return nil
}
