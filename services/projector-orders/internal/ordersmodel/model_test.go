package ordersmodel_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// Ids sort in the order they are numbered, which is the order tables are dumped in.
var (
	acc1   = uuid.MustParse("0195a000-0000-7000-8000-0000000000a1")
	acc2   = uuid.MustParse("0195a000-0000-7000-8000-0000000000a2")
	ord1   = uuid.MustParse("0195a000-0000-7000-8000-0000000000b1")
	ord2   = uuid.MustParse("0195a000-0000-7000-8000-0000000000b2")
	ord3   = uuid.MustParse("0195a000-0000-7000-8000-0000000000b3")
	ord4   = uuid.MustParse("0195a000-0000-7000-8000-0000000000b4")
	cust1  = uuid.MustParse("0195a000-0000-7000-8000-0000000000c1")
	cust2  = uuid.MustParse("0195a000-0000-7000-8000-0000000000c2")
	oslo   = &events.Address{Line1: "1 Karl Johans gate", City: "Oslo", PostalCode: "0154", Country: "NO"}
	lyon   = &events.Address{Line1: "2 Rue de la République", City: "Lyon", PostalCode: "69002", Country: "FR"}
	items1 = []events.LineItem{{SKU: "LMP-1", Name: "Desk lamp", Quantity: 2, UnitPriceCents: 1250}, {SKU: "BLB-9", Name: "Bulb", Quantity: 1, UnitPriceCents: 300}}
	items2 = []events.LineItem{{SKU: "CHR-2", Name: "Chair", Quantity: 1, UnitPriceCents: 5000}}
	items3 = []events.LineItem{{SKU: "PEN-3", Name: "Pen", Quantity: 3, UnitPriceCents: 150}, {SKU: "INK-4", Name: "Ink \"blue\"", Quantity: 1, UnitPriceCents: 1999}}
	items4 = []events.LineItem{{SKU: "DSK-5", Name: "Desk", Quantity: 1, UnitPriceCents: 25000}}
)

// scenario is a realistic interleaving of both aggregates: an account that
// is funded, debited, has a deposit reversed, is funded again and closed; orders placed in
// the old (v1) and new (v2) OrderPlaced shapes that are paid, shipped,
// cancelled before and after payment, or left placed.
func scenario(t testing.TB) []events.Envelope {
	return []events.Envelope{
		ev(acc1, 1, 1, events.AccountOpened{Owner: "ada", InitialBalanceCents: 1000, Currency: "EUR"}),
		ev(ord1, 1, 2, placedV1(t, cust1, items1, "EUR")),
		ev(acc2, 1, 3, events.AccountOpened{Owner: "bob", InitialBalanceCents: 0, Currency: "USD"}),
		ev(acc1, 2, 4, events.FundsDeposited{AmountCents: 500, Source: "card"}),
		ev(ord2, 1, 5, events.OrderPlaced{CustomerID: cust2, Items: items2, Currency: "EUR", TaxCents: 700, ShippingAddress: oslo}),
		ev(ord1, 2, 6, events.OrderPaid{AmountCents: 2800, Method: "card"}),
		ev(acc1, 3, 7, events.FundsWithdrawn{AmountCents: 200, Reason: "atm"}),
		ev(acc2, 2, 8, events.FundsDeposited{AmountCents: 2500, Source: "salary"}),
		ev(ord2, 2, 9, events.OrderCancelled{Reason: "out of stock"}),
		ev(ord1, 3, 10, events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD0001"}),
		ev(acc1, 4, 11, events.DepositReversed{DepositVersion: 2, AmountCents: 500, Reason: "entered twice"}),
		ev(ord3, 1, 12, events.OrderPlaced{CustomerID: cust1, Items: items3, Currency: "USD", TaxCents: 245}),
		ev(acc1, 5, 13, events.FundsDeposited{AmountCents: 300, Source: "refund"}),
		ev(ord3, 2, 14, events.OrderPaid{AmountCents: 2694, Method: "wallet"}),
		ev(ord3, 3, 15, events.OrderCancelled{Reason: "customer request"}),
		ev(ord4, 1, 16, events.OrderPlaced{CustomerID: cust2, Items: items4, Currency: "EUR", ShippingAddress: lyon}),
		ev(acc2, 3, 17, events.FundsWithdrawn{AmountCents: 1000, Reason: "rent"}),
		ev(acc1, 6, 18, events.AccountClosed{Reason: "moving abroad"}),
	}
}

// scenarioRows is what the scenario must leave in the tables, written out
// by hand.
var scenarioRows = ordersmodel.Rows{
	Orders: []ordersmodel.OrderRow{
		{OrderID: ord1, CustomerID: cust1, Status: "shipped", Items: items1, TaxCents: 0, TotalCents: 2800, Currency: "EUR",
			Version: 3, LastPosition: 10, PlacedAt: us(2), UpdatedAt: us(10)},
		{OrderID: ord2, CustomerID: cust2, Status: "cancelled", Items: items2, TaxCents: 700, TotalCents: 5700, Currency: "EUR",
			ShippingAddress: oslo, Version: 2, LastPosition: 9, PlacedAt: us(5), UpdatedAt: us(9)},
		{OrderID: ord3, CustomerID: cust1, Status: "cancelled", Items: items3, TaxCents: 245, TotalCents: 2694, Currency: "USD",
			Version: 3, LastPosition: 15, PlacedAt: us(12), UpdatedAt: us(15)},
		{OrderID: ord4, CustomerID: cust2, Status: "placed", Items: items4, TaxCents: 0, TotalCents: 25000, Currency: "EUR",
			ShippingAddress: lyon, Version: 1, LastPosition: 16, PlacedAt: us(16), UpdatedAt: us(16)},
	},
	Accounts: []ordersmodel.AccountRow{
		{AccountID: acc1, Owner: "ada", BalanceCents: 1100, Currency: "EUR", Status: "closed", Version: 6, LastPosition: 18, UpdatedAt: us(18)},
		{AccountID: acc2, Owner: "bob", BalanceCents: 1500, Currency: "USD", Status: "open", Version: 3, LastPosition: 17, UpdatedAt: us(17)},
	},
	Activity: []ordersmodel.ActivityRow{
		{AccountID: acc1, Version: 1, Position: 1, Type: "AccountOpened", AmountCents: 1000, BalanceAfterCents: 1000, Description: "account opened", RecordedAt: us(1)},
		{AccountID: acc1, Version: 2, Position: 4, Type: "FundsDeposited", AmountCents: 500, BalanceAfterCents: 1500, Description: "card", RecordedAt: us(4)},
		{AccountID: acc1, Version: 3, Position: 7, Type: "FundsWithdrawn", AmountCents: -200, BalanceAfterCents: 1300, Description: "atm", RecordedAt: us(7)},
		{AccountID: acc1, Version: 4, Position: 11, Type: "DepositReversed", AmountCents: -500, BalanceAfterCents: 800, Description: "entered twice", RecordedAt: us(11)},
		{AccountID: acc1, Version: 5, Position: 13, Type: "FundsDeposited", AmountCents: 300, BalanceAfterCents: 1100, Description: "refund", RecordedAt: us(13)},
		{AccountID: acc1, Version: 6, Position: 18, Type: "AccountClosed", AmountCents: 0, BalanceAfterCents: 1100, Description: "moving abroad", RecordedAt: us(18)},
		{AccountID: acc2, Version: 1, Position: 3, Type: "AccountOpened", AmountCents: 0, BalanceAfterCents: 0, Description: "account opened", RecordedAt: us(3)},
		{AccountID: acc2, Version: 2, Position: 8, Type: "FundsDeposited", AmountCents: 2500, BalanceAfterCents: 2500, Description: "salary", RecordedAt: us(8)},
		{AccountID: acc2, Version: 3, Position: 17, Type: "FundsWithdrawn", AmountCents: -1000, BalanceAfterCents: 1500, Description: "rent", RecordedAt: us(17)},
	},
}

func TestProjectScenario(t *testing.T) {
	assertRows(t, mustProject(t, scenario(t)), scenarioRows)
}

// TestApplyScenario is the contract: whatever the batching, the tables end
// up exactly as written out by hand, and the checkpoint counts every event
// once. Batches that continue each stream where the model is take the
// one-round-trip path; batches that overlap what was applied (each repeats
// the previous batch's last events) take the locking path; both must
// produce the same rows.
func TestApplyScenario(t *testing.T) {
	tests := []struct {
		size, overlap int
	}{{18, 0}, {1, 0}, {2, 0}, {5, 0}, {8, 0}, {3, 1}, {6, 4}, {2, 1}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("batches of %d overlapping by %d", tt.size, tt.overlap), func(t *testing.T) {
			t.Parallel()
			_, pool := newDB(t)
			m := ordersmodel.New(pool)
			ctx := context.Background()
			evs := scenario(t)
			start := time.Now()
			applied, skipped := 0, 0
			for i := 0; i < len(evs); i += tt.size {
				from := max(i-tt.overlap, 0)
				res, err := m.ApplyBatch(ctx, evs[from:min(i+tt.size, len(evs))])
				if err != nil {
					t.Fatal(err)
				}
				applied += res.Applied
				skipped += res.Skipped
				if wantLocked := i > 0 && tt.overlap > 0; res.Locked != wantLocked {
					t.Fatalf("batch at %d: Locked = %v, want %v", i, res.Locked, wantLocked)
				}
			}
			end := time.Now()
			if applied != len(evs) {
				t.Fatalf("applied %d events, want %d", applied, len(evs))
			}
			if wantSkipped := tt.overlap * ((len(evs) - 1) / tt.size); skipped != wantSkipped {
				t.Fatalf("skipped %d events, want %d", skipped, wantSkipped)
			}
			assertRows(t, dump(t, pool), scenarioRows)

			cp := checkpoint(t, pool)
			if cp.Projection != ordersdb.Projection || cp.Position != 18 || cp.EventsApplied != 18 {
				t.Fatalf("checkpoint = %+v, want position 18, events_applied 18", cp)
			}
			if cp.UpdatedAt.Before(start.Add(-time.Second)) || cp.UpdatedAt.After(end.Add(time.Second)) {
				t.Fatalf("checkpoint updated_at %v not within the test's run %v..%v", cp.UpdatedAt, start, end)
			}

			got, err := m.Versions(ctx, []uuid.UUID{acc1, acc2, ord1, ord2, ord3, ord4, cust1})
			if err != nil {
				t.Fatal(err)
			}
			want := map[uuid.UUID]int64{acc1: 6, acc2: 3, ord1: 3, ord2: 2, ord3: 3, ord4: 1}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Versions = %v, want %v", got, want)
			}
		})
	}
}

func TestVersionsEmpty(t *testing.T) {
	_, pool := newDB(t)
	got, err := ordersmodel.New(pool).Versions(context.Background(), []uuid.UUID{uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("Versions of an unknown stream = %v, want empty", got)
	}
	if _, ok, err := ordersmodel.ReadCheckpoint(context.Background(), pool); err != nil || ok {
		t.Fatalf("checkpoint before any event: ok=%v err=%v, want none", ok, err)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	evs := scenario(t)
	tests := []struct {
		name    string
		batches [][2]int // [from, to) slices of evs, applied in order
		skipped int
	}{
		{"same batch twice", [][2]int{{0, 18}, {0, 18}}, 18},
		{"overlapping batches", [][2]int{{0, 10}, {6, 18}}, 4},
		{"overlap then replay of the start", [][2]int{{0, 5}, {3, 12}, {0, 18}}, 2 + 12},
		{"single events redelivered", [][2]int{{0, 1}, {0, 1}, {1, 3}, {2, 3}, {3, 18}, {17, 18}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, pool := newDB(t)
			m := ordersmodel.New(pool)
			applied, skipped := 0, 0
			for _, b := range tt.batches {
				res, err := m.ApplyBatch(ctx, evs[b[0]:b[1]])
				if err != nil {
					t.Fatal(err)
				}
				applied += res.Applied
				skipped += res.Skipped
			}
			if applied != len(evs) || skipped != tt.skipped {
				t.Fatalf("applied %d, skipped %d; want %d, %d", applied, skipped, len(evs), tt.skipped)
			}
			assertRows(t, dump(t, pool), scenarioRows)
			if cp := checkpoint(t, pool); cp.Position != 18 || cp.EventsApplied != 18 {
				t.Fatalf("checkpoint = %+v, want position 18, events_applied 18", cp)
			}
		})
	}
}

// TestApplySkipsStreamBehindBatch: a batch that continues a stream from a
// version the model does not have leaves that stream alone (the Sequencer
// heals it later) and still applies the other streams.
func TestApplySkipsStreamBehindBatch(t *testing.T) {
	ctx := context.Background()
	_, pool := newDB(t)
	m := ordersmodel.New(pool)
	evs := scenario(t)
	if _, err := m.ApplyBatch(ctx, evs[:4]); err != nil { // acc1 at v2, ord1 at v1, acc2 at v1
		t.Fatal(err)
	}
	before := dump(t, pool)
	// acc1 v4 and v5 without v3; acc2 v2 is next and must apply.
	res, err := m.ApplyBatch(ctx, []events.Envelope{evs[10], evs[12], evs[7]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Skipped != 2 || res.Position != 8 {
		t.Fatalf("result = %+v, want applied 1, skipped 2, position 8", res)
	}
	after := dump(t, pool)
	if !reflect.DeepEqual(after.Accounts[0], before.Accounts[0]) {
		t.Fatalf("acc1 changed by a batch it cannot continue: %+v -> %+v", before.Accounts[0], after.Accounts[0])
	}
	if after.Accounts[1].Version != 2 || after.Accounts[1].BalanceCents != 2500 {
		t.Fatalf("acc2 = %+v, want version 2, balance 2500", after.Accounts[1])
	}
	if cp := checkpoint(t, pool); cp.Position != 8 || cp.EventsApplied != 5 {
		t.Fatalf("checkpoint = %+v, want position 8, events_applied 5", cp)
	}
}

// TestApplyRejectsInvalidEvents: events that can never be applied fail the
// whole batch with a non-transient ErrInvalidEvent (the consumer then
// isolates and dead-letters them) and change nothing.
func TestApplyRejectsInvalidEvents(t *testing.T) {
	ctx := context.Background()
	_, pool := newDB(t)
	m := ordersmodel.New(pool)
	good := ev(acc1, 1, 1, events.AccountOpened{Owner: "ada", InitialBalanceCents: 1, Currency: "EUR"})
	wrongStream := ev(ord1, 1, 2, events.OrderPlaced{CustomerID: cust1, Items: items1, Currency: "EUR"})
	wrongStream.StreamType = events.StreamAccount
	noPayload := ev(ord1, 1, 2, events.OrderPlaced{})
	noPayload.Data = nil
	tests := []struct {
		name string
		evs  []events.Envelope
	}{
		{"paid before placed", []events.Envelope{good, ev(ord1, 1, 2, events.OrderPaid{AmountCents: 1, Method: "card"})}},
		{"placed at version 2", []events.Envelope{good, ev(ord1, 2, 2, events.OrderPlaced{CustomerID: cust1, Items: items1, Currency: "EUR"})}},
		{"opened twice", []events.Envelope{good, ev(acc1, 2, 2, events.AccountOpened{Owner: "x", Currency: "EUR"})}},
		{"order payload on an account stream", []events.Envelope{good, wrongStream}},
		{"no payload", []events.Envelope{good, noPayload}},
		{"hole inside the batch", []events.Envelope{good, ev(acc1, 3, 2, events.FundsDeposited{AmountCents: 1})}},
		{"versions out of order", []events.Envelope{good, ev(acc1, 2, 2, events.FundsDeposited{AmountCents: 1}), ev(acc1, 2, 3, events.FundsDeposited{AmountCents: 1})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.ApplyBatch(ctx, tt.evs)
			if !errors.Is(err, ordersmodel.ErrInvalidEvent) {
				t.Fatalf("err = %v, want ErrInvalidEvent", err)
			}
			if m.Transient(err) {
				t.Fatalf("Transient(%v) = true, want false", err)
			}
		})
	}
	if rows := dump(t, pool); len(rows.Orders)+len(rows.Accounts)+len(rows.Activity) != 0 {
		t.Fatalf("rejected batches left rows: %+v", rows)
	}
}

// TestApplyRace runs several appliers over the same events at once, with
// different batch boundaries so that their batches overlap partially: every
// event must take effect exactly once (the events_applied counter and the
// appliers' own counts prove no double effect; the rows prove the values).
func TestApplyRace(t *testing.T) {
	ctx := context.Background()
	_, pool := newDB(t)
	evs := workload(60, 60, 8)
	want := mustProject(t, evs)
	sizes := []int{50, 50, 37, 101}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
		locked  int
		errs    = make(chan error, len(sizes))
	)
	for _, size := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(evs); i += size {
				res, err := ordersmodel.New(pool).ApplyBatch(ctx, evs[i:min(i+size, len(evs))])
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				applied += res.Applied
				if res.Locked {
					locked++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d batches found a row moved by another applier and took the locking path", locked)
	// Each applier goes through the events in order, so whoever wins a
	// row, the others continue it from the stored version: together they
	// apply every event, and each exactly once.
	if applied != len(evs) {
		t.Fatalf("appliers applied %d events in total, want exactly %d", applied, len(evs))
	}
	got := dump(t, pool)
	assertRows(t, got, want)
	if len(got.Activity) != 60*8 {
		t.Fatalf("activity rows = %d, want %d", len(got.Activity), 60*8)
	}
	cp := checkpoint(t, pool)
	if cp.EventsApplied != int64(len(evs)) || cp.Position != evs[len(evs)-1].Position {
		t.Fatalf("checkpoint = %+v, want events_applied %d, position %d", cp, len(evs), evs[len(evs)-1].Position)
	}
}

func TestTransient(t *testing.T) {
	m := ordersmodel.New(nil)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"invalid event", fmt.Errorf("apply: %w", ordersmodel.ErrInvalidEvent), false},
		{"deadline", fmt.Errorf("apply: %w", context.DeadlineExceeded), true},
		{"plain error", errors.New("boom"), false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"admin shutdown", fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Transient(tt.err); got != tt.want {
				t.Fatalf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestTransientConnectionRefused: a model whose Postgres is unreachable
// fails with an error the consumer must retry, not dead-letter.
func TestTransientConnectionRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, "postgres://cqrs:cqrs@127.0.0.1:1/cqrs?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := ordersmodel.New(pool)
	_, err = m.Versions(ctx, []uuid.UUID{acc1})
	if err == nil || !m.Transient(err) {
		t.Fatalf("Versions against a closed port: err = %v, Transient = %v; want a transient error", err, m.Transient(err))
	}
	err = m.Apply(ctx, scenario(t)[:1])
	if err == nil || !m.Transient(err) {
		t.Fatalf("Apply against a closed port: err = %v, Transient = %v; want a transient error", err, m.Transient(err))
	}
}

// TestTryApply: the optimistic step applies a batch in one round trip when
// every stream continues from its stored version, and otherwise writes
// nothing at all (the server aborts the pipeline's implicit transaction),
// leaving the batch to the Sequencer's path.
func TestTryApply(t *testing.T) {
	ctx := context.Background()
	evs := scenario(t)
	pick := func(idx ...int) []events.Envelope {
		var out []events.Envelope
		for _, i := range idx {
			out = append(out, evs[i])
		}
		return out
	}
	tests := []struct {
		name    string
		before  int // evs[:before] are applied first
		batch   []events.Envelope
		applied bool
	}{
		{"new streams", 0, evs[:3], true},
		{"continuing and new streams", 4, evs[4:], true},
		{"redelivered", 4, evs[:4], false},
		{"a gap", 4, pick(10, 12), false},                               // acc1 v4, v5 on v2
		{"one duplicate among continuing events", 4, pick(7, 0), false}, // acc2 v2 continues, acc1 v1 is a duplicate
		{"a stream a step behind", 4, pick(6, 9), false},                // acc1 v3 continues, ord1 v3 on v1
		{"repeated within the batch", 0, pick(0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, pool := newDB(t)
			m := ordersmodel.New(pool)
			if tt.before > 0 {
				if _, err := m.ApplyBatch(ctx, evs[:tt.before]); err != nil {
					t.Fatal(err)
				}
			}
			before := dump(t, pool)
			done, err := m.TryApply(ctx, tt.batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(done) != len(tt.batch) {
				t.Fatalf("%d flags for %d events", len(done), len(tt.batch))
			}
			for i, d := range done {
				if d != tt.applied {
					t.Fatalf("event %d applied = %v, want %v for every event", i, d, tt.applied)
				}
			}
			if !tt.applied {
				assertRows(t, dump(t, pool), before)
				return
			}
			all := append(append([]events.Envelope(nil), evs[:tt.before]...), tt.batch...)
			assertRows(t, dump(t, pool), mustProject(t, all))
			if cp := checkpoint(t, pool); cp.Position != all[len(all)-1].Position || cp.EventsApplied != int64(len(all)) {
				t.Fatalf("checkpoint = %+v, want position %d, events_applied %d", cp, all[len(all)-1].Position, len(all))
			}
		})
	}
}
