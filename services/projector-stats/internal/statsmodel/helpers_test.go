package statsmodel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

// fixedNow is the checkpoint clock of every test model.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

// newRedis connects to the test Redis.
func newRedis(t testing.TB) *redis.Client {
	t.Helper()
	testenv.RequireRedis(t)
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatalf("parse REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newNamespace returns a namespace of this test alone, deleted afterwards.
func newNamespace(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	ns := "test-" + uuid.NewString()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range scanKeys(t, rdb, ns) {
			rdb.Unlink(ctx, k)
		}
	})
	return ns
}

// newModel returns a model over a fresh fixed namespace.
func newModel(t testing.TB, opts ...statsmodel.Option) (*statsmodel.Model, *redis.Client, string) {
	t.Helper()
	rdb := newRedis(t)
	ns := newNamespace(t, rdb)
	opts = append([]statsmodel.Option{statsmodel.WithClock(func() time.Time { return fixedNow })}, opts...)
	return statsmodel.New(rdb, statsmodel.FixedNamespace(ns), opts...), rdb, ns
}

func scanKeys(t testing.TB, rdb *redis.Client, ns string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, ns+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s: %v", ns, err)
	}
	sort.Strings(keys)
	return keys
}

// dump reads every key of namespace ns: hashes as map[string]string,
// sorted sets as "member=score" lists, strings as string.
func dump(t testing.TB, rdb *redis.Client, ns string) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	for _, k := range scanKeys(t, rdb, ns) {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("type %s: %v", k, err)
		}
		switch typ {
		case "hash":
			out[k] = rdb.HGetAll(ctx, k).Val()
		case "zset":
			out[k] = zsetString(rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "string":
			out[k] = rdb.Get(ctx, k).Val()
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
	}
	return out
}

// zsetString lists a sorted set by member, with scores as integers.
func zsetString(zs []redis.Z) []string {
	out := make([]string, 0, len(zs))
	for _, z := range zs {
		out = append(out, fmt.Sprintf("%v=%d", z.Member, int64(z.Score)))
	}
	sort.Strings(out)
	return out
}

// assertModel fails with every difference between the namespace's content
// and want.
func assertModel(t testing.TB, rdb *redis.Client, ns string, want map[string]any) {
	t.Helper()
	got := dump(t, rdb, ns)
	if reflect.DeepEqual(got, want) {
		return
	}
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (want %v)", k, w))
		case !reflect.DeepEqual(g, w):
			diffs = append(diffs, fmt.Sprintf("%s:\n   got  %v\n   want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s = %v", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	t.Fatalf("model differs from the reference in %d keys:\n%s", len(diffs), strings.Join(diffs, "\n"))
}

// reference computes the expected namespace content from all (each event
// once, any order) with the domain folds, independently of the model's incremental
// arithmetic: a customer's total spent is the sum of PaidCents of their
// folded orders that are not cancelled.
func reference(ns string, all []events.Envelope, now time.Time) map[string]any {
	k := statskeys.Keys{NS: ns}
	streams := map[uuid.UUID][]events.Envelope{}
	var maxPos int64
	for _, e := range all {
		streams[e.StreamID] = append(streams[e.StreamID], e)
		maxPos = max(maxPos, e.Position)
	}
	type cust struct {
		placed, paid, cancelled, spent int64
		last                           time.Time
	}
	customers := map[uuid.UUID]*cust{}
	want := map[string]any{}
	for id, evs := range streams {
		sort.Slice(evs, func(i, j int) bool { return evs[i].Version < evs[j].Version })
		switch evs[0].StreamType {
		case events.StreamOrder:
			s := order.Fold(order.State{}, evs)
			want[k.Order(id.String())] = map[string]string{
				"customer_id": s.CustomerID.String(), "total_cents": itoa(s.TotalCents),
				"paid_cents": itoa(s.PaidCents), "status": string(s.Status), "version": itoa(s.Version),
			}
			c := customers[s.CustomerID]
			if c == nil {
				c = &cust{}
				customers[s.CustomerID] = c
			}
			c.placed++
			if s.PaidCents > 0 {
				c.paid++
			}
			if s.Status == order.StatusCancelled {
				c.cancelled++
			} else {
				c.spent += s.PaidCents
			}
			if s.PlacedAt.After(c.last) {
				c.last = s.PlacedAt
			}
		case events.StreamAccount:
			s := account.Fold(account.State{}, evs)
			want[k.AccountBalance(id.String())] = map[string]string{
				"balance_cents": itoa(s.BalanceCents), "currency": s.Currency, "owner": s.Owner,
				"status": string(s.Status), "version": itoa(s.Version), "updated_at": s.UpdatedAt.UTC().Format(statskeys.TimeLayout),
			}
			want[k.StreamVersion(id.String())] = itoa(s.Version)
		}
	}
	var top []string
	for id, c := range customers {
		want[k.CustomerStats(id.String())] = map[string]string{
			"orders_placed": itoa(c.placed), "orders_paid": itoa(c.paid), "orders_cancelled": itoa(c.cancelled),
			"total_spent_cents": itoa(c.spent), "last_order_at": c.last.UTC().Format(statskeys.TimeLayout),
		}
		if c.paid > 0 {
			top = append(top, fmt.Sprintf("%s=%d", id, c.spent))
		}
	}
	if len(top) > 0 {
		sort.Strings(top)
		want[k.TopCustomers()] = top
	}
	if len(all) > 0 {
		want[k.Checkpoint()] = map[string]string{
			"position": itoa(maxPos), "events_applied": strconv.Itoa(len(all)), "updated_at": now.UTC().Format(statskeys.TimeLayout),
		}
	}
	return want
}

// requireVariety fails unless all holds every event type and at least one
// paid order that was cancelled (refunded), so a reference comparison
// covers every branch of the model.
func requireVariety(t testing.TB, all []events.Envelope) {
	t.Helper()
	seen := map[string]int{}
	status := map[uuid.UUID]string{}
	refunds := 0
	for _, e := range all {
		seen[e.Type]++
		if e.Type == events.TypeOrderCancelled && status[e.StreamID] == events.TypeOrderPaid {
			refunds++
		}
		status[e.StreamID] = e.Type
	}
	for _, typ := range []string{events.TypeOrderPlaced, events.TypeOrderPaid, events.TypeOrderShipped, events.TypeOrderCancelled,
		events.TypeAccountOpened, events.TypeFundsDeposited, events.TypeFundsWithdrawn, events.TypeDepositReversed, events.TypeAccountClosed} {
		if seen[typ] == 0 {
			t.Fatalf("the history has no %s event (%v)", typ, seen)
		}
	}
	if refunds == 0 {
		t.Fatalf("the history has no cancelled paid order (%v)", seen)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// emitFunc records one decided event on a stream at expected version and
// returns it as stored (with version, position and recorded_at).
type emitFunc func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope

// memoryEmitter numbers events like a store would: positions 1, 2, ... and
// recorded_at increasing by a millisecond plus a few nanoseconds, so that
// time strings of different lengths occur.
func memoryEmitter() (emitFunc, *[]events.Envelope) {
	var all []events.Envelope
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) events.Envelope {
		pos := int64(len(all) + 1)
		at := base.Add(time.Duration(pos)*time.Millisecond + time.Duration(pos%3)*time.Nanosecond*100)
		e := events.Envelope{
			EventID: uuid.New(), StreamType: st, StreamID: id, Version: expected + 1, Position: pos,
			Type: p.EventType(), SchemaVersion: events.Default.CurrentVersion(p.EventType()),
			OccurredAt: at, RecordedAt: at, Data: p,
		}
		all = append(all, e)
		return e
	}, &all
}

// simulation drives the domain aggregates with random valid commands, so
// that the events obey every business rule (pay the exact total, never
// overdraw, reverse a deposit once...).
type simulation struct {
	rng       *rand.Rand
	emit      emitFunc
	customers []uuid.UUID
	orders    map[uuid.UUID]order.State
	orderIDs  []uuid.UUID
	accounts  map[uuid.UUID]account.State
	deposits  map[uuid.UUID][]events.Envelope
	acctIDs   []uuid.UUID
}

func newSimulation(seed uint64, customers int, emit emitFunc) *simulation {
	s := &simulation{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), emit: emit,
		orders: map[uuid.UUID]order.State{}, accounts: map[uuid.UUID]account.State{}, deposits: map[uuid.UUID][]events.Envelope{},
	}
	for range customers {
		s.customers = append(s.customers, uuid.New())
	}
	return s
}

// run takes n random steps; each step appends one event.
func (s *simulation) run(n int) {
	for i := 0; i < n; {
		if s.step() {
			i++
		}
	}
}

func (s *simulation) step() bool {
	switch r := s.rng.IntN(100); {
	case r < 25 || len(s.orderIDs) == 0:
		return s.placeOrder()
	case r < 65:
		return s.advanceOrder(s.orderIDs[s.rng.IntN(len(s.orderIDs))])
	case r < 72 || len(s.acctIDs) == 0:
		return s.openAccount()
	default:
		return s.advanceAccount(s.acctIDs[s.rng.IntN(len(s.acctIDs))])
	}
}

func (s *simulation) placeOrder() bool {
	items := make([]events.LineItem, 1+s.rng.IntN(3))
	for i := range items {
		items[i] = events.LineItem{SKU: fmt.Sprintf("SKU-%d", s.rng.IntN(50)), Name: "Widget",
			Quantity: 1 + s.rng.Int64N(4), UnitPriceCents: 1 + s.rng.Int64N(20_000)}
	}
	c := order.Place{CustomerID: s.customers[s.rng.IntN(len(s.customers))], Items: items, Currency: "EUR", TaxCents: s.rng.Int64N(500)}
	id := uuid.New()
	s.orderIDs = append(s.orderIDs, id)
	return s.decideOrder(id, func(st order.State) ([]events.Payload, error) { return order.DecidePlace(st, c) })
}

func (s *simulation) advanceOrder(id uuid.UUID) bool {
	st := s.orders[id]
	cancel := s.rng.IntN(4) == 0
	switch {
	case cancel:
		return s.decideOrder(id, func(st order.State) ([]events.Payload, error) {
			return order.DecideCancel(st, order.Cancel{Reason: "changed mind"})
		})
	case st.Status == order.StatusPlaced:
		return s.decideOrder(id, func(st order.State) ([]events.Payload, error) {
			return order.DecidePay(st, order.Pay{AmountCents: st.TotalCents, Method: "card"})
		})
	default:
		return s.decideOrder(id, func(st order.State) ([]events.Payload, error) {
			return order.DecideShip(st, order.Ship{Carrier: "DHL", TrackingNumber: "T-1"})
		})
	}
}

func (s *simulation) decideOrder(id uuid.UUID, decide func(order.State) ([]events.Payload, error)) bool {
	st := s.orders[id]
	payloads, err := decide(st)
	if err != nil {
		return false // refused by the domain: not an event
	}
	for _, p := range payloads {
		st = order.Evolve(st, s.emit(events.StreamOrder, id, st.Version, p))
	}
	s.orders[id] = st
	return true
}

func (s *simulation) openAccount() bool {
	id := uuid.New()
	s.acctIDs = append(s.acctIDs, id)
	c := account.Open{Owner: fmt.Sprintf("owner-%d", len(s.acctIDs)), InitialBalanceCents: s.rng.Int64N(50_000), Currency: "EUR"}
	return s.decideAccount(id, func(st account.State) ([]events.Payload, error) { return account.DecideOpen(st, c) })
}

func (s *simulation) advanceAccount(id uuid.UUID) bool {
	switch r := s.rng.IntN(20); {
	case r < 9:
		return s.decideAccount(id, func(st account.State) ([]events.Payload, error) {
			return account.DecideDeposit(st, account.DepositFunds{AmountCents: 1 + s.rng.Int64N(30_000), Source: "bank"})
		})
	case r < 16:
		return s.decideAccount(id, func(st account.State) ([]events.Payload, error) {
			return account.DecideWithdraw(st, account.Withdraw{AmountCents: 1 + s.rng.Int64N(max(st.BalanceCents, 1)), Reason: "atm"})
		})
	case r < 19:
		deps := s.deposits[id]
		if len(deps) == 0 {
			return false
		}
		dep := deps[s.rng.IntN(len(deps))]
		d := dep.Data.(events.FundsDeposited)
		return s.decideAccount(id, func(st account.State) ([]events.Payload, error) {
			return account.DecideReverseDeposit(st, account.ReverseDeposit{DepositVersion: dep.Version, Reason: "error", Deposit: &d})
		})
	default:
		return s.decideAccount(id, func(st account.State) ([]events.Payload, error) {
			return account.DecideClose(st, account.Close{Reason: "done"})
		})
	}
}

func (s *simulation) decideAccount(id uuid.UUID, decide func(account.State) ([]events.Payload, error)) bool {
	st := s.accounts[id]
	payloads, err := decide(st)
	if err != nil {
		return false
	}
	for _, p := range payloads {
		e := s.emit(events.StreamAccount, id, st.Version, p)
		if e.Type == events.TypeFundsDeposited {
			s.deposits[id] = append(s.deposits[id], e)
		}
		st = account.Evolve(st, e)
	}
	s.accounts[id] = st
	return true
}

// interleave returns all events in a random order that keeps each stream's
// own order, like consumers of different partitions would deliver them.
func interleave(rng *rand.Rand, all []events.Envelope) []events.Envelope {
	var ids []uuid.UUID
	queues := map[uuid.UUID][]events.Envelope{}
	for _, e := range all {
		if _, ok := queues[e.StreamID]; !ok {
			ids = append(ids, e.StreamID)
		}
		queues[e.StreamID] = append(queues[e.StreamID], e)
	}
	out := make([]events.Envelope, 0, len(all))
	for len(ids) > 0 {
		i := rng.IntN(len(ids))
		id := ids[i]
		out = append(out, queues[id][0])
		queues[id] = queues[id][1:]
		if len(queues[id]) == 0 {
			ids[i] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
		}
	}
	return out
}

// applyInBatches applies evs in consecutive batches of size n and returns
// how many events changed the model.
func applyInBatches(t testing.TB, m *statsmodel.Model, evs []events.Envelope, n int) int {
	t.Helper()
	applied := 0
	for i := 0; i < len(evs); i += n {
		c, err := m.ApplyCount(context.Background(), evs[i:min(i+n, len(evs))])
		if err != nil {
			t.Fatalf("apply events %d..: %v", i, err)
		}
		applied += c
	}
	return applied
}
