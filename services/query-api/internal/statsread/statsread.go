// Package statsread reads projector-stats' Redis model (the statskeys
// contract). Every read first resolves the active namespace, so a rebuild
// that fills a fresh namespace and flips the active-namespace key switches
// readers over atomically.
package statsread

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// Reader queries the stats model. It is safe for concurrent use.
type Reader struct {
	rdb   *redis.Client
	nsKey string
	// defaultNS is the namespace while nsKey is unset.
	defaultNS string
}

// New returns a Reader that resolves the active namespace from nsKey
// (normally statskeys.ActiveNamespaceKey; tests point it at their own key).
func New(rdb *redis.Client, nsKey string) *Reader {
	return NewWithDefault(rdb, nsKey, statskeys.DefaultNamespace)
}

// NewWithDefault is New with the namespace used while nsKey is unset.
func NewWithDefault(rdb *redis.Client, nsKey, defaultNS string) *Reader {
	if nsKey == "" {
		nsKey = statskeys.ActiveNamespaceKey
	}
	return &Reader{rdb: rdb, nsKey: nsKey, defaultNS: defaultNS}
}

// Keys resolves the active namespace (statskeys.DefaultNamespace when the
// key is absent).
func (r *Reader) Keys(ctx context.Context) (statskeys.Keys, error) {
	ns, err := r.rdb.Get(ctx, r.nsKey).Result()
	if errors.Is(err, redis.Nil) || (err == nil && ns == "") {
		return statskeys.Keys{NS: r.defaultNS}, nil
	}
	if err != nil {
		return statskeys.Keys{}, fmt.Errorf("read active stats namespace %s: %w", r.nsKey, err)
	}
	return statskeys.Keys{NS: ns}, nil
}

// CustomerStats returns one customer's statistics, or model.ErrNotFound
// when the customer has none.
func (r *Reader) CustomerStats(ctx context.Context, customerID uuid.UUID) (model.CustomerStats, error) {
	keys, err := r.Keys(ctx)
	if err != nil {
		return model.CustomerStats{}, err
	}
	h, err := r.rdb.HGetAll(ctx, keys.CustomerStats(customerID.String())).Result()
	if err != nil {
		return model.CustomerStats{}, fmt.Errorf("read stats of customer %s: %w", customerID, err)
	}
	if len(h) == 0 {
		return model.CustomerStats{}, fmt.Errorf("stats of customer %s: %w", customerID, model.ErrNotFound)
	}
	p := fieldParser{hash: h}
	s := model.CustomerStats{
		CustomerID:      customerID,
		OrdersPlaced:    p.int("orders_placed"),
		OrdersPaid:      p.int("orders_paid"),
		OrdersCancelled: p.int("orders_cancelled"),
		TotalSpentCents: p.int("total_spent_cents"),
		LastOrderAt:     p.time("last_order_at"),
	}
	if p.err != nil {
		return model.CustomerStats{}, fmt.Errorf("stats of customer %s: %w", customerID, p.err)
	}
	return s, nil
}

// OrderVersion returns the version of order orderID that the stats reflect
// and the customer the order belongs to, or model.ErrNotFound when they
// reflect none of it yet. The projector changes the order's hash and its
// customer's stats in one script, so stats read after the order's version
// include that version's effect.
func (r *Reader) OrderVersion(ctx context.Context, orderID uuid.UUID) (customerID string, version int64, err error) {
	keys, err := r.Keys(ctx)
	if err != nil {
		return "", 0, err
	}
	h, err := r.rdb.HGetAll(ctx, keys.Order(orderID.String())).Result()
	if err != nil {
		return "", 0, fmt.Errorf("read order %s in the stats model: %w", orderID, err)
	}
	if len(h) == 0 {
		return "", 0, fmt.Errorf("order %s in the stats model: %w", orderID, model.ErrNotFound)
	}
	p := fieldParser{hash: h}
	if version = p.int(statskeys.FieldVersion); p.err != nil {
		return "", 0, fmt.Errorf("order %s in the stats model: %w", orderID, p.err)
	}
	return h[statskeys.FieldCustomerID], version, nil
}

// TopCustomers returns the limit customers with the highest total spend,
// highest first.
func (r *Reader) TopCustomers(ctx context.Context, limit int) ([]model.TopCustomer, error) {
	keys, err := r.Keys(ctx)
	if err != nil {
		return nil, err
	}
	zs, err := r.rdb.ZRevRangeWithScores(ctx, keys.TopCustomers(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read top customers: %w", err)
	}
	out := make([]model.TopCustomer, 0, len(zs))
	for i, z := range zs {
		member, _ := z.Member.(string)
		out = append(out, model.TopCustomer{Rank: i + 1, CustomerID: member, TotalSpentCents: int64(z.Score)})
	}
	return out, nil
}

// Checkpoint returns the stats projection's progress in the active
// namespace (the zero Checkpoint when it has recorded none).
func (r *Reader) Checkpoint(ctx context.Context) (model.Checkpoint, error) {
	keys, err := r.Keys(ctx)
	if err != nil {
		return model.Checkpoint{}, err
	}
	h, err := r.rdb.HGetAll(ctx, keys.Checkpoint()).Result()
	if err != nil {
		return model.Checkpoint{}, fmt.Errorf("read stats checkpoint: %w", err)
	}
	p := fieldParser{hash: h}
	cp := model.Checkpoint{Position: p.int("position"), EventsApplied: p.int("events_applied"), UpdatedAt: p.time("updated_at")}
	if p.err != nil {
		return model.Checkpoint{}, fmt.Errorf("stats checkpoint: %w", p.err)
	}
	return cp, nil
}

// fieldParser reads typed hash fields; an absent field is zero, a malformed
// one is an error (the model is corrupt, not empty).
type fieldParser struct {
	hash map[string]string
	err  error
}

func (p *fieldParser) int(field string) int64 {
	v, ok := p.hash[field]
	if !ok || v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.err = errors.Join(p.err, fmt.Errorf("field %s=%q is not an integer", field, v))
	}
	return n
}

func (p *fieldParser) time(field string) *time.Time {
	v, ok := p.hash[field]
	if !ok || v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.err = errors.Join(p.err, fmt.Errorf("field %s=%q is not an RFC 3339 time", field, v))
		return nil
	}
	t = t.UTC()
	return &t
}
