package rebuilder_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
	"github.com/escqrs/platform/services/projector-orders/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-orders/internal/workload"
)

// env is a fresh database with the event store and the read-model schema.
type env struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatal(err)
	}
	if err := ordersdb.Migrate(url); err != nil {
		t.Fatal(err)
	}
	pool := testenv.NewPool(t, url)
	return &env{pool: pool, store: eventstore.New(pool)}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// copyHistory writes n generated events straight into the events table.
func (e *env) copyHistory(t testing.TB, gen *workload.Generator, n int) {
	t.Helper()
	if err := workload.CopyEvents(context.Background(), e.pool, gen.Take(n)); err != nil {
		t.Fatal(err)
	}
}

// all reads the whole store, in commit-safe order, as a rebuild does:
// everything committed before the call, even if write transactions of
// other tests in the same cluster hold the commit-safe horizon back.
func (e *env) all(t testing.TB) []events.Envelope {
	t.Helper()
	rd := rebuilder.NewReader(e.store)
	defer rd.Close()
	var out collected
	var tr rebuild.Tracker
	if err := rebuild.Replay(context.Background(), rd, &out, 0, &tr, rebuild.Options{}); err != nil {
		t.Fatal(err)
	}
	return out
}

type collected []events.Envelope

func (c *collected) HandleBatch(_ context.Context, batch []events.Envelope) error {
	*c = append(*c, batch...)
	return nil
}

// sequencer is what the live projector runs: a Sequencer over the live tables.
func (e *env) sequencer() *consumer.Sequencer {
	return consumer.NewSequencer(ordersmodel.New(e.pool), e.store, consumer.NewMetrics(prometheus.NewRegistry(), "test"))
}

// assertModel compares the live tables with the fold of the whole store,
// row by row.
func (e *env) assertModel(t testing.TB) ordersmodel.Rows {
	t.Helper()
	want, err := ordersmodel.Project(e.all(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ordersmodel.Dump(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if diff := got.Diff(want); len(diff) > 0 {
		for _, d := range diff {
			t.Error(d)
		}
		t.FailNow()
	}
	return want
}

// assertSchema checks that the only tables are the contract's, and that the
// live tables' indexes have their migration names.
func (e *env) assertSchema(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'
		AND (tablename LIKE '%\_rebuild' OR tablename LIKE '%\_old') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("tables left behind: %v", left)
	}
	rows, err = e.pool.Query(ctx, `SELECT tablename || '.' || indexname FROM pg_indexes
		WHERE tablename IN ('orders_view', 'accounts_balance', 'account_activity') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"account_activity.account_activity_pkey", "accounts_balance.accounts_balance_balance",
		"accounts_balance.accounts_balance_pkey", "orders_view.orders_view_customer", "orders_view.orders_view_pkey"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("indexes = %v, want %v", got, want)
	}
	rows, err = e.pool.Query(ctx, `SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint
		WHERE contype = 'p' AND conrelid::regclass::text IN ('orders_view', 'accounts_balance', 'account_activity') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"account_activity.account_activity_pkey", "accounts_balance.accounts_balance_pkey", "orders_view.orders_view_pkey"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("primary keys = %v, want %v", got, want)
	}
}
