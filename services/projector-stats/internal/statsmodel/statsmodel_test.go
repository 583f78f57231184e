package statsmodel_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

// TestContractLiteral pins the exact fields and values of every key for a
// small hand-computed history (no reference code involved).
func TestContractLiteral(t *testing.T) {
	m, rdb, ns := newModel(t)
	ctx := context.Background()
	cust, orderA, orderB, orderC, acct := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	t0 := time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC)
	ev := func(st events.StreamType, id uuid.UUID, v, pos int64, at time.Time, p events.Payload) events.Envelope {
		return events.Envelope{EventID: uuid.New(), StreamType: st, StreamID: id, Version: v, Position: pos,
			Type: p.EventType(), SchemaVersion: 1, OccurredAt: at, RecordedAt: at, Data: p}
	}
	items := []events.LineItem{{SKU: "A", Name: "Apple", Quantity: 2, UnitPriceCents: 450}, {SKU: "B", Name: "Bag", Quantity: 1, UnitPriceCents: 100}}
	batch := []events.Envelope{
		ev(events.StreamOrder, orderA, 1, 10, t0, events.OrderPlaced{CustomerID: cust, Items: items, Currency: "EUR", TaxCents: 100}),
		ev(events.StreamAccount, acct, 1, 11, t0.Add(time.Second), events.AccountOpened{Owner: "ada", InitialBalanceCents: 1000, Currency: "EUR"}),
		ev(events.StreamOrder, orderA, 2, 12, t0.Add(2*time.Second), events.OrderPaid{AmountCents: 1100, Method: "card"}),
		ev(events.StreamOrder, orderB, 1, 13, t0.Add(3*time.Second+250*time.Millisecond), events.OrderPlaced{CustomerID: cust, Items: items[1:], Currency: "EUR"}),
		ev(events.StreamAccount, acct, 2, 14, t0.Add(4*time.Second), events.FundsDeposited{AmountCents: 500, Source: "bank"}),
		ev(events.StreamOrder, orderB, 2, 15, t0.Add(5*time.Second), events.OrderPaid{AmountCents: 100, Method: "card"}),
		ev(events.StreamAccount, acct, 3, 16, t0.Add(6*time.Second), events.FundsWithdrawn{AmountCents: 200, Reason: "atm"}),
		ev(events.StreamOrder, orderA, 3, 17, t0.Add(7*time.Second), events.OrderCancelled{Reason: "late"}),
		ev(events.StreamOrder, orderB, 3, 18, t0.Add(8*time.Second), events.OrderShipped{Carrier: "DHL", TrackingNumber: "1"}),
		ev(events.StreamAccount, acct, 4, 19, t0.Add(9*time.Second), events.DepositReversed{DepositVersion: 2, AmountCents: 500, Reason: "error"}),
		ev(events.StreamOrder, orderC, 1, 20, t0.Add(10*time.Second), events.OrderPlaced{CustomerID: cust, Items: items[:1], Currency: "EUR"}),
		ev(events.StreamOrder, orderC, 2, 21, t0.Add(11*time.Second), events.OrderCancelled{Reason: "unpaid"}),
		ev(events.StreamAccount, acct, 5, 22, t0.Add(12*time.Second+5*time.Nanosecond), events.AccountClosed{Reason: "bye"}),
	}
	if err := m.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	k := statskeys.Keys{NS: ns}
	assertModel(t, rdb, ns, map[string]any{
		k.CustomerStats(cust.String()): map[string]string{
			"orders_placed": "3", "orders_paid": "2", "orders_cancelled": "2",
			"total_spent_cents": "100", "last_order_at": "2025-06-01T09:30:10.000000000Z",
		},
		k.TopCustomers(): []string{cust.String() + "=100"},
		k.Order(orderA.String()): map[string]string{
			"customer_id": cust.String(), "total_cents": "1100", "paid_cents": "1100", "status": "cancelled", "version": "3"},
		k.Order(orderB.String()): map[string]string{
			"customer_id": cust.String(), "total_cents": "100", "paid_cents": "100", "status": "shipped", "version": "3"},
		k.Order(orderC.String()): map[string]string{
			"customer_id": cust.String(), "total_cents": "900", "paid_cents": "0", "status": "cancelled", "version": "2"},
		k.AccountBalance(acct.String()): map[string]string{
			"balance_cents": "800", "currency": "EUR", "owner": "ada", "status": "closed", "version": "5",
			"updated_at": "2025-06-01T09:30:12.000000005Z"},
		k.StreamVersion(acct.String()): "5",
		k.Checkpoint():                 map[string]string{"position": "22", "events_applied": "13", "updated_at": "2030-01-02T03:04:05.600000000Z"},
	})

	vs, err := m.Versions(ctx, []uuid.UUID{orderA, orderC, acct, cust})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[uuid.UUID]int64{orderA: 3, orderC: 2, acct: 5, cust: 0}; fmt.Sprint(vs) != fmt.Sprint(want) {
		t.Fatalf("versions = %v, want %v", vs, want)
	}
	cp, err := m.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (statsmodel.Checkpoint{Namespace: ns, Position: 22, EventsApplied: 13, UpdatedAt: fixedNow}); cp != want {
		t.Fatalf("checkpoint = %+v, want %+v", cp, want)
	}
}

// TestContractReference applies a long random history, delivered in a
// partition-like interleaving and in batches of several sizes, and compares
// every key with the domain folds' reference.
func TestContractReference(t *testing.T) {
	for _, batch := range []int{1, 37, 500} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			t.Parallel()
			m, rdb, ns := newModel(t)
			emit, all := memoryEmitter()
			newSimulation(uint64(batch), 25, emit).run(1500)
			requireVariety(t, *all)
			delivery := interleave(rand.New(rand.NewPCG(7, uint64(batch))), *all)
			if n := applyInBatches(t, m, delivery, batch); n != len(*all) {
				t.Fatalf("applied %d events, want %d", n, len(*all))
			}
			assertModel(t, rdb, ns, reference(ns, *all, fixedNow))
		})
	}
}

// TestLastOrderAtIsNewestPlacement delivers a customer's newer order before
// an older one whose time is a whole second: compared as trimmed RFC 3339
// strings ("…05Z" > "…05.5Z") the older would win.
func TestLastOrderAtIsNewestPlacement(t *testing.T) {
	m, rdb, ns := newModel(t)
	cust := uuid.New()
	newer, older := time.Date(2025, 1, 1, 10, 0, 5, 500_000_000, time.UTC), time.Date(2025, 1, 1, 10, 0, 5, 0, time.UTC)
	place := func(pos int64, at time.Time) events.Envelope {
		return events.Envelope{EventID: uuid.New(), StreamType: events.StreamOrder, StreamID: uuid.New(), Version: 1, Position: pos,
			Type: events.TypeOrderPlaced, SchemaVersion: 2, RecordedAt: at,
			Data: events.OrderPlaced{CustomerID: cust, Items: []events.LineItem{{SKU: "x", Name: "x", Quantity: 1, UnitPriceCents: 1}}, Currency: "EUR"}}
	}
	if err := m.Apply(context.Background(), []events.Envelope{place(2, newer), place(1, older)}); err != nil {
		t.Fatal(err)
	}
	got := rdb.HGet(context.Background(), statskeys.Keys{NS: ns}.CustomerStats(cust.String()), "last_order_at").Val()
	if want := "2025-01-01T10:00:05.500000000Z"; got != want {
		t.Fatalf("last_order_at = %q, want %q", got, want)
	}
	parsed, err := time.Parse(time.RFC3339Nano, got)
	if err != nil || !parsed.Equal(newer) {
		t.Fatalf("last_order_at %q parses to %v, %v; want %v", got, parsed, err, newer)
	}
}

func TestIdempotentApply(t *testing.T) {
	emit, all := memoryEmitter()
	newSimulation(42, 10, emit).run(1200)
	requireVariety(t, *all)
	delivery := interleave(rand.New(rand.NewPCG(1, 2)), *all)

	t.Run("same batch twice", func(t *testing.T) {
		t.Parallel()
		m, rdb, ns := newModel(t)
		if n := applyInBatches(t, m, delivery, 500); n != len(delivery) {
			t.Fatalf("first pass applied %d, want %d", n, len(delivery))
		}
		if n := applyInBatches(t, m, delivery, 500); n != 0 {
			t.Fatalf("second pass applied %d events, want 0", n)
		}
		assertModel(t, rdb, ns, reference(ns, *all, fixedNow))
	})

	t.Run("overlapping batches", func(t *testing.T) {
		t.Parallel()
		m, rdb, ns := newModel(t)
		applied := 0
		// Windows of 300 advancing by 200: every event after the first 200
		// is delivered twice, by two different batches.
		for start := 0; start < len(delivery); start += 200 {
			n, err := m.ApplyCount(context.Background(), delivery[start:min(start+300, len(delivery))])
			if err != nil {
				t.Fatal(err)
			}
			applied += n
		}
		if applied != len(delivery) {
			t.Fatalf("applied %d events, want %d", applied, len(delivery))
		}
		assertModel(t, rdb, ns, reference(ns, *all, fixedNow))
	})

	t.Run("concurrent replicas", func(t *testing.T) {
		t.Parallel()
		// Each goroutine has its own model (as replicas do) over the same
		// namespace, and applies the whole delivery in its own batch size.
		// Their scripts are new to Redis, so they also race to load them.
		salt := uuid.NewString()
		_, rdb, ns := newModel(t)
		sizes := []int{500, 50, 7, 133}
		counts := make([]int, len(sizes))
		var wg sync.WaitGroup
		for i, size := range sizes {
			replica := statsmodel.New(rdb, statsmodel.FixedNamespace(ns),
				statsmodel.WithClock(func() time.Time { return fixedNow }), statsmodel.WithScriptSalt(salt))
			wg.Go(func() { counts[i] = applyInBatches(t, replica, delivery, size) })
		}
		wg.Wait()
		total := 0
		for _, c := range counts {
			total += c
		}
		if total != len(delivery) {
			t.Fatalf("replicas applied %v = %d events in all, want exactly %d", counts, total, len(delivery))
		}
		assertModel(t, rdb, ns, reference(ns, *all, fixedNow))
	})
}

// TestApplySkipsGapsAndStale checks the script's own guard, without a
// Sequencer in front: an event beyond version+1 or at/below the stored
// version changes nothing, and TryApply (the Sequencer's optimistic step)
// says which events of a batch did change the model.
func TestApplySkipsGapsAndStale(t *testing.T) {
	m, rdb, ns := newModel(t)
	emit, all := memoryEmitter()
	id := uuid.New()
	for v := int64(0); v < 4; v++ {
		emit(events.StreamAccount, id, v, []events.Payload{
			events.AccountOpened{Owner: "o", InitialBalanceCents: 10, Currency: "EUR"},
			events.FundsDeposited{AmountCents: 5}, events.FundsDeposited{AmountCents: 7}, events.FundsWithdrawn{AmountCents: 3}}[v])
	}
	evs := *all
	ctx := context.Background()
	for _, step := range []struct {
		name  string
		batch []events.Envelope
		done  []bool
	}{
		{"gap", evs[1:2], []bool{false}},
		{"first", evs[0:1], []bool{true}},
		{"gap again", evs[2:4], []bool{false, false}},
		{"stale, then the next two", evs[0:3], []bool{false, true, true}},
		{"stale, then the last", evs[2:4], []bool{false, true}},
		{"all stale", evs[0:4], []bool{false, false, false, false}},
	} {
		done, err := m.TryApply(ctx, step.batch)
		if err != nil || !slices.Equal(done, step.done) {
			t.Fatalf("%s: applied %v, %v; want %v", step.name, done, err, step.done)
		}
	}
	assertModel(t, rdb, ns, reference(ns, evs, fixedNow))
	if n, err := m.ApplyCount(ctx, evs); err != nil || n != 0 {
		t.Fatalf("ApplyCount of a replay = %d, %v; want 0", n, err)
	}
}

// TestActiveNamespaceSwitch follows an active-namespace key (a private one,
// not the live statskeys.ActiveNamespaceKey): writes and version reads go to
// the default until the key names another namespace.
func TestActiveNamespaceSwitch(t *testing.T) {
	rdb := newRedis(t)
	ctx := context.Background()
	def, next := newNamespace(t, rdb), newNamespace(t, rdb)
	activeKey := "test-active-" + uuid.NewString()
	t.Cleanup(func() { rdb.Del(context.Background(), activeKey) })
	m := statsmodel.New(rdb, statsmodel.ActiveNamespaceAt(activeKey, def), statsmodel.WithClock(func() time.Time { return fixedNow }))

	emit, all := memoryEmitter()
	newSimulation(3, 5, emit).run(200)
	first, second := (*all)[:120], (*all)[120:]
	if err := m.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	assertModel(t, rdb, def, reference(def, first, fixedNow))

	// A rebuild would have filled next; here it holds the first part too,
	// applied by a fixed-namespace model, as a rebuild does.
	if err := statsmodel.New(rdb, statsmodel.FixedNamespace(next), statsmodel.WithClock(func() time.Time { return fixedNow })).Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, activeKey, next, 0).Err(); err != nil {
		t.Fatal(err)
	}
	vs, err := m.Versions(ctx, []uuid.UUID{second[0].StreamID})
	if err != nil {
		t.Fatal(err)
	}
	if want := second[0].Version - 1; vs[second[0].StreamID] != want {
		t.Fatalf("version after switch = %d, want %d", vs[second[0].StreamID], want)
	}
	if err := m.Apply(ctx, second); err != nil {
		t.Fatal(err)
	}
	assertModel(t, rdb, def, reference(def, first, fixedNow))
	assertModel(t, rdb, next, reference(next, *all, fixedNow))
	cp, err := m.Checkpoint(ctx)
	if err != nil || cp.Namespace != next || cp.EventsApplied != int64(len(*all)) {
		t.Fatalf("checkpoint = %+v, %v; want namespace %s with %d events", cp, err, next, len(*all))
	}
}

// TestScriptNotCached applies through scripts Redis has never seen, as on a
// freshly started (or flushed) server: the model loads them and resends.
func TestScriptNotCached(t *testing.T) {
	m, rdb, ns := newModel(t, statsmodel.WithScriptSalt(uuid.NewString()))
	emit, all := memoryEmitter()
	newSimulation(9, 5, emit).run(300)
	if n := applyInBatches(t, m, *all, 500); n != len(*all) {
		t.Fatalf("applied %d, want %d", n, len(*all))
	}
	assertModel(t, rdb, ns, reference(ns, *all, fixedNow))
}

func TestPoisonEventIsNotTransient(t *testing.T) {
	m, _, _ := newModel(t)
	// An OrderPaid as the first event of a stream names no customer: the
	// script rejects it.
	paid := events.Envelope{EventID: uuid.New(), StreamType: events.StreamOrder, StreamID: uuid.New(), Version: 1, Position: 1,
		Type: events.TypeOrderPaid, SchemaVersion: 1, Data: events.OrderPaid{AmountCents: 5, Method: "card"}}
	err := m.Apply(context.Background(), []events.Envelope{paid})
	if err == nil {
		t.Fatal("apply of an OrderPaid without OrderPlaced succeeded")
	}
	if m.Transient(err) {
		t.Fatalf("Transient(%v) = true, want false", err)
	}
	bad := paid
	bad.Version = 0
	if err := m.Apply(context.Background(), []events.Envelope{bad}); err == nil || m.Transient(err) {
		t.Fatalf("apply of version 0: %v (transient %v), want a permanent error", err, err != nil && m.Transient(err))
	}
}

func TestTransient(t *testing.T) {
	testRedis := newRedis(t)
	// A port nothing listens on: a real connection refusal.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer down.Close()
	dead := statsmodel.New(down, statsmodel.FixedNamespace("unused"))
	_, downErr := dead.Versions(context.Background(), []uuid.UUID{uuid.New()})
	applyErr := dead.Apply(context.Background(), []events.Envelope{{StreamType: events.StreamAccount, StreamID: uuid.New(), Version: 1,
		Type: events.TypeAccountClosed, Data: events.AccountClosed{}}})
	unknownCmd := testRedis.Do(context.Background(), "NOSUCHCOMMAND").Err()

	m := statsmodel.New(testRedis, statsmodel.FixedNamespace("unused"))
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused (versions)", downErr, true},
		{"connection refused (apply)", applyErr, true},
		{"deadline", fmt.Errorf("apply: %w", context.DeadlineExceeded), true},
		{"pool timeout", fmt.Errorf("apply: %w", redis.ErrPoolTimeout), true},
		{"noscript", redis.ErrNoScript, true},
		{"client closed", redis.ErrClosed, true},
		{"unknown command", unknownCmd, false},
		{"plain", errors.New("bad event"), false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.err == nil) != (tc.name == "nil") {
				t.Fatalf("setup: err = %v", tc.err)
			}
			if got := m.Transient(tc.err); got != tc.want {
				t.Fatalf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestEmptyNamespaceRejected(t *testing.T) {
	rdb := newRedis(t)
	for _, ns := range []statsmodel.Namespace{statsmodel.FixedNamespace(""), statsmodel.ActiveNamespaceAt("k", ""), {}} {
		m := statsmodel.New(rdb, ns)
		if _, err := m.Versions(context.Background(), []uuid.UUID{uuid.New()}); err == nil {
			t.Errorf("Versions with namespace %+v succeeded", ns)
		}
		e := events.Envelope{StreamType: events.StreamAccount, StreamID: uuid.New(), Version: 1, Data: events.AccountClosed{}}
		if err := m.Apply(context.Background(), []events.Envelope{e}); err == nil {
			t.Errorf("Apply with namespace %+v succeeded", ns)
		}
	}
}
