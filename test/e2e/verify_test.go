package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// reference is the fold of the whole event store, computed here from the
// events alone: what every read model must equal.
type reference struct {
	events    int
	accounts  map[uuid.UUID]account.State
	orders    map[uuid.UUID]order.State
	customers map[uuid.UUID]*customerStats
}

type customerStats struct {
	placed, paid, cancelled, spent int64
	lastOrderAt                    time.Time
}

func (s *system) reference(ctx context.Context, pool *pgxpool.Pool) (*reference, error) {
	store := eventstore.New(pool)
	ref := &reference{accounts: map[uuid.UUID]account.State{}, orders: map[uuid.UUID]order.State{}, customers: map[uuid.UUID]*customerStats{}}
	var cursor eventstore.Cursor
	for {
		batch, next, err := store.ReadAll(ctx, cursor, 5000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			ref.events++
			switch e.StreamType {
			case events.StreamAccount:
				ref.accounts[e.StreamID] = account.Evolve(ref.accounts[e.StreamID], e)
			case events.StreamOrder:
				ref.orders[e.StreamID] = order.Evolve(ref.orders[e.StreamID], e)
			}
		}
		cursor = next
	}
	for _, o := range ref.orders {
		c := ref.customers[o.CustomerID]
		if c == nil {
			c = &customerStats{}
			ref.customers[o.CustomerID] = c
		}
		c.placed++
		if o.PaidCents > 0 {
			c.paid++
			if o.Status != order.StatusCancelled {
				c.spent += o.PaidCents
			}
		}
		if o.Status == order.StatusCancelled {
			c.cancelled++
		}
		if o.PlacedAt.After(c.lastOrderAt) {
			c.lastOrderAt = o.PlacedAt
		}
	}
	return ref, nil
}

// awaitModels polls until every read model equals the reference fold, or
// fails the test with the differences that remained.
func (s *system) awaitModels(ctx context.Context, timeout time.Duration) *reference {
	s.t.Helper()
	pool, err := pgxpool.New(ctx, s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer pool.Close()
	ref, err := s.reference(ctx, pool)
	if err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		diffs := s.compare(ctx, pool, ref)
		if len(diffs) == 0 {
			return ref
		}
		if time.Now().After(deadline) {
			if len(diffs) > 15 {
				diffs = append(diffs[:15], fmt.Sprintf("... and %d more", len(diffs)-15))
			}
			s.t.Fatalf("read models differ from the reference fold of %d events after %s:\n%s", ref.events, timeout, strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (s *system) compare(ctx context.Context, pool *pgxpool.Pool, ref *reference) []string {
	var diffs []string
	diffs = append(diffs, compareOrdersView(ctx, pool, ref)...)
	diffs = append(diffs, compareAccounts(ctx, pool, ref)...)
	if len(diffs) > 0 {
		return diffs
	}
	diffs = append(diffs, s.compareStats(ctx, ref)...)
	diffs = append(diffs, s.compareSearch(ctx, ref)...)
	return diffs
}

func compareOrdersView(ctx context.Context, pool *pgxpool.Pool, ref *reference) []string {
	rows, err := pool.Query(ctx, `SELECT order_id, customer_id, status, total_cents, tax_cents, version, currency, jsonb_array_length(items) FROM orders_view`)
	if err != nil {
		return []string{"orders_view: " + err.Error()}
	}
	defer rows.Close()
	var diffs []string
	seen := 0
	for rows.Next() {
		var (
			id, customer        uuid.UUID
			status, currency    string
			total, tax, version int64
			items               int
		)
		if err := rows.Scan(&id, &customer, &status, &total, &tax, &version, &currency, &items); err != nil {
			return []string{"orders_view: " + err.Error()}
		}
		seen++
		want, ok := ref.orders[id]
		got := fmt.Sprintf("customer=%s status=%s total=%d tax=%d version=%d currency=%s items=%d", customer, status, total, tax, version, currency, items)
		exp := fmt.Sprintf("customer=%s status=%s total=%d tax=%d version=%d currency=%s items=%d", want.CustomerID, want.Status, want.TotalCents, want.TaxCents, want.Version, want.Currency, len(want.Items))
		if !ok || got != exp {
			diffs = append(diffs, fmt.Sprintf("orders_view %s: %s, want %s", id, got, exp))
		}
	}
	if seen != len(ref.orders) {
		diffs = append(diffs, fmt.Sprintf("orders_view has %d rows, want %d", seen, len(ref.orders)))
	}
	return diffs
}

func compareAccounts(ctx context.Context, pool *pgxpool.Pool, ref *reference) []string {
	rows, err := pool.Query(ctx, `SELECT account_id, owner, balance_cents, status, version FROM accounts_balance`)
	if err != nil {
		return []string{"accounts_balance: " + err.Error()}
	}
	defer rows.Close()
	var diffs []string
	seen := 0
	for rows.Next() {
		var (
			id               uuid.UUID
			owner, status    string
			balance, version int64
		)
		if err := rows.Scan(&id, &owner, &balance, &status, &version); err != nil {
			return []string{"accounts_balance: " + err.Error()}
		}
		seen++
		want := ref.accounts[id]
		got := fmt.Sprintf("owner=%s balance=%d status=%s version=%d", owner, balance, status, version)
		exp := fmt.Sprintf("owner=%s balance=%d status=%s version=%d", want.Owner, want.BalanceCents, want.Status, want.Version)
		if got != exp {
			diffs = append(diffs, fmt.Sprintf("accounts_balance %s: %s, want %s", id, got, exp))
		}
	}
	if seen != len(ref.accounts) {
		diffs = append(diffs, fmt.Sprintf("accounts_balance has %d rows, want %d", seen, len(ref.accounts)))
	}
	var activity int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM account_activity`).Scan(&activity); err != nil {
		return append(diffs, err.Error())
	}
	var wantActivity int64
	for _, a := range ref.accounts {
		wantActivity += a.Version
	}
	if activity != wantActivity {
		diffs = append(diffs, fmt.Sprintf("account_activity has %d rows, want %d (one per account event)", activity, wantActivity))
	}
	return diffs
}

// compareStats checks every customer's Redis stats through the query API.
func (s *system) compareStats(ctx context.Context, ref *reference) []string {
	var diffs []string
	for id, want := range ref.customers {
		status, got, err := call(ctx, http.MethodGet, s.query+"/v1/customers/"+id.String()+"/stats", nil)
		if err != nil || status != http.StatusOK {
			diffs = append(diffs, fmt.Sprintf("stats %s: status %d %v %v", id, status, err, got))
			continue
		}
		g := fmt.Sprintf("placed=%v paid=%v cancelled=%v spent=%v", got["orders_placed"], got["orders_paid"], got["orders_cancelled"], got["total_spent_cents"])
		w := fmt.Sprintf("placed=%d paid=%d cancelled=%d spent=%d", want.placed, want.paid, want.cancelled, want.spent)
		if g != w {
			diffs = append(diffs, fmt.Sprintf("stats %s: %s, want %s", id, g, w))
		}
		if last, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(got["last_order_at"])); !last.Equal(want.lastOrderAt) {
			diffs = append(diffs, fmt.Sprintf("stats %s: last_order_at %v, want %s", id, got["last_order_at"], want.lastOrderAt.Format(time.RFC3339Nano)))
		}
	}
	return diffs
}

// compareSearch checks the Elasticsearch documents of every customer
// through the query API's search: count and fields.
func (s *system) compareSearch(ctx context.Context, ref *reference) []string {
	byCustomer := map[uuid.UUID][]order.State{}
	for _, o := range ref.orders {
		byCustomer[o.CustomerID] = append(byCustomer[o.CustomerID], o)
	}
	var diffs []string
	for customer, orders := range byCustomer {
		sort.Slice(orders, func(i, j int) bool { return orders[i].ID.String() < orders[j].ID.String() })
		q := url.Values{"customer_id": {customer.String()}, "limit": {"100"}}
		status, got, err := call(ctx, http.MethodGet, s.query+"/v1/search/orders?"+q.Encode(), nil)
		if err != nil || status != http.StatusOK {
			diffs = append(diffs, fmt.Sprintf("search %s: status %d %v %v", customer, status, err, got))
			continue
		}
		if total, _ := got["total"].(float64); int(total) != len(orders) {
			diffs = append(diffs, fmt.Sprintf("search %s: total %v, want %d", customer, got["total"], len(orders)))
			continue
		}
		docs := map[string]map[string]any{}
		items, _ := got["items"].([]any)
		for _, it := range items {
			d := it.(map[string]any)
			docs[fmt.Sprint(d["order_id"])] = d
		}
		for _, o := range orders {
			d, ok := docs[o.ID.String()]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("search: order %s missing", o.ID))
				continue
			}
			g := fmt.Sprintf("status=%v total=%v version=%v", d["status"], d["total_cents"], d["version"])
			w := fmt.Sprintf("status=%s total=%d version=%d", o.Status, o.TotalCents, o.Version)
			if g != w {
				diffs = append(diffs, fmt.Sprintf("search %s: %s, want %s", o.ID, g, w))
			}
		}
	}
	return diffs
}
