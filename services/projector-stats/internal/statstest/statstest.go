// Package statstest holds what the stats model's tests and the rebuild tests
// share: a simulation that drives the domain aggregates with random valid
// commands, an independent reference of the model computed with the domain
// folds, and a dump of a namespace's Redis content to compare with it.
package statstest

import (
	"context"
	"fmt"
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
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

// NewRedis connects to the test Redis (skipping the test when it is absent
// outside CI) and closes the client when the test ends.
func NewRedis(t testing.TB) *redis.Client {
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

// DeleteMatching unlinks every key matching the glob pattern when the test
// ends, so that tests sharing one Redis leave nothing behind.
func DeleteMatching(t testing.TB, rdb *redis.Client, pattern string) {
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Unlink(ctx, iter.Val())
		}
	})
}

// ScanKeys returns the keys matching the glob pattern, sorted.
func ScanKeys(t testing.TB, rdb *redis.Client, pattern string) []string {
	t.Helper()
	keys, err := Scan(context.Background(), rdb, pattern)
	if err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	return keys
}

// Scan returns the keys matching the glob pattern, sorted. Unlike ScanKeys
// it may be called from any goroutine.
func Scan(ctx context.Context, rdb *redis.Client, pattern string) ([]string, error) {
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	sort.Strings(keys)
	return keys, nil
}

// Dump reads every key of namespace ns: hashes as map[string]string,
// sorted sets as "member=score" lists, strings as string.
func Dump(t testing.TB, rdb *redis.Client, ns string) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	for _, k := range ScanKeys(t, rdb, ns+":*") {
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

// AssertModel fails with every difference between the namespace's content
// and want.
func AssertModel(t testing.TB, rdb *redis.Client, ns string, want map[string]any) {
	t.Helper()
	if diffs := Diff(Dump(t, rdb, ns), want); len(diffs) > 0 {
		t.Fatalf("namespace %s differs from the reference in %d keys:\n%s", ns, len(diffs), strings.Join(limit(diffs, 20), "\n"))
	}
}

// Diff lists every difference between got and want, sorted.
func Diff(got, want map[string]any) []string {
	if reflect.DeepEqual(got, want) {
		return nil
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
	return diffs
}

func limit(diffs []string, n int) []string {
	if len(diffs) <= n {
		return diffs
	}
	return append(diffs[:n:n], fmt.Sprintf("... and %d more", len(diffs)-n))
}

// Reference computes the expected namespace content from all (each event
// once, any order) with the domain folds, independently of the model's
// incremental arithmetic: a customer's total spent is the sum of PaidCents
// of their folded orders that are not cancelled. The checkpoint's
// updated_at is now, the model's clock.
func Reference(ns string, all []events.Envelope, now time.Time) map[string]any {
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

// RequireVariety fails unless all holds every event type and at least one
// paid order that was cancelled (refunded), so a reference comparison
// covers every branch of the model.
func RequireVariety(t testing.TB, all []events.Envelope) {
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

// Emit records one decided event on a stream at expected version and
// returns it as stored (with version, position and recorded_at).
type Emit func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) (events.Envelope, error)

// MemoryEmitter numbers events like a store would: positions 1, 2, ... and
// recorded_at increasing by a millisecond plus a few nanoseconds, so that
// time strings of different lengths occur.
func MemoryEmitter() (Emit, *[]events.Envelope) {
	var all []events.Envelope
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) (events.Envelope, error) {
		pos := int64(len(all) + 1)
		at := base.Add(time.Duration(pos)*time.Millisecond + time.Duration(pos%3)*time.Nanosecond*100)
		e := events.Envelope{
			EventID: uuid.New(), StreamType: st, StreamID: id, Version: expected + 1, Position: pos,
			Type: p.EventType(), SchemaVersion: events.Default.CurrentVersion(p.EventType()),
			OccurredAt: at, RecordedAt: at, Data: p,
		}
		all = append(all, e)
		return e, nil
	}, &all
}

// StoreEmitter appends every decided event to the real event store. It may
// be used from any goroutine: a failed append is returned, not fatal.
func StoreEmitter(store *eventstore.Store) Emit {
	return func(st events.StreamType, id uuid.UUID, expected int64, p events.Payload) (events.Envelope, error) {
		got, err := store.Append(context.Background(), eventstore.AppendRequest{
			StreamType: st, StreamID: id, ExpectedVersion: expected, Events: []eventstore.NewEvent{{Data: p}},
		})
		if err != nil {
			return events.Envelope{}, fmt.Errorf("append %s to %s: %w", p.EventType(), id, err)
		}
		return got[0], nil
	}
}
