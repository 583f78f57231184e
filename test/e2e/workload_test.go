package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// workload issues a random mix of account and order commands, mostly valid
// and some that the domain rejects (overdrafts, shipping unpaid orders,
// wrong payment amounts, commands on closed accounts).
type workload struct {
	api       string
	mu        sync.Mutex
	accounts  []string
	orders    []placedOrder
	customers []string
	statuses  map[int]*atomic.Int64
}

type placedOrder struct {
	id    string
	total int64
}

func newWorkload(api string, customers int) *workload {
	w := &workload{api: api, statuses: map[int]*atomic.Int64{}}
	for i := 0; i < customers; i++ {
		w.customers = append(w.customers, uuid.NewString())
	}
	for _, code := range []int{200, 201, 404, 409, 422} {
		w.statuses[code] = &atomic.Int64{}
	}
	return w
}

// run issues n commands from `workers` goroutines; onDone is called after
// each command (may be nil).
func (w *workload) run(ctx context.Context, n, workers int, seed uint64, onDone func(done int64)) error {
	var (
		issued atomic.Int64
		wg     sync.WaitGroup
		errMu  sync.Mutex
		first  error
	)
	for g := 0; g < workers; g++ {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		wg.Go(func() {
			for {
				k := issued.Add(1)
				if k > int64(n) || ctx.Err() != nil {
					return
				}
				if err := w.step(ctx, rng); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
				if onDone != nil {
					onDone(k)
				}
			}
		})
	}
	wg.Wait()
	return first
}

func (w *workload) pickAccount(rng *rand.Rand) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.accounts) == 0 {
		return "", false
	}
	return w.accounts[rng.IntN(len(w.accounts))], true
}

func (w *workload) pickOrder(rng *rand.Rand) (placedOrder, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.orders) == 0 {
		return placedOrder{}, false
	}
	return w.orders[rng.IntN(len(w.orders))], true
}

func (w *workload) step(ctx context.Context, rng *rand.Rand) error {
	var (
		path string
		body map[string]any
	)
	acct, haveAcct := w.pickAccount(rng)
	ord, haveOrder := w.pickOrder(rng)
	switch r := rng.IntN(100); {
	case r < 10 || !haveAcct:
		path, body = "/v1/accounts", map[string]any{"owner": "owner-" + uuid.NewString()[:6], "initial_balance_cents": rng.IntN(10_000), "currency": "EUR"}
	case r < 28:
		path, body = "/v1/accounts/"+acct+"/deposits", map[string]any{"amount_cents": 1 + rng.IntN(5_000), "source": "card"}
	case r < 42:
		path, body = "/v1/accounts/"+acct+"/withdrawals", map[string]any{"amount_cents": 1 + rng.IntN(6_000), "reason": "rent"}
	case r < 44:
		path, body = "/v1/accounts/"+acct+"/close", map[string]any{"reason": "done"}
	case r < 66 || !haveOrder:
		items := []map[string]any{}
		for i := 0; i <= rng.IntN(3); i++ {
			items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%03d", rng.IntN(50)), "name": productNames[rng.IntN(len(productNames))],
				"quantity": 1 + rng.IntN(4), "unit_price_cents": 100 + rng.IntN(10_000)})
		}
		body = map[string]any{"customer_id": w.customers[rng.IntN(len(w.customers))], "currency": "EUR", "items": items, "tax_cents": rng.IntN(500)}
		path = "/v1/orders"
	case r < 82:
		amount := ord.total
		if rng.IntN(20) == 0 {
			amount++ // wrong amount: 422
		}
		path, body = "/v1/orders/"+ord.id+"/payments", map[string]any{"amount_cents": amount, "method": "card"}
	case r < 93:
		path, body = "/v1/orders/"+ord.id+"/shipments", map[string]any{"carrier": "DHL", "tracking_number": "T" + uuid.NewString()[:8]}
	default:
		path, body = "/v1/orders/"+ord.id+"/cancellation", map[string]any{"reason": "changed mind"}
	}
	status, reply, err := call(ctx, http.MethodPost, w.api+path, body)
	if err != nil {
		return err
	}
	counter, ok := w.statuses[status]
	if !ok {
		return fmt.Errorf("POST %s: unexpected status %d: %v", path, status, reply)
	}
	counter.Add(1)
	if status == http.StatusCreated {
		w.mu.Lock()
		if path == "/v1/accounts" {
			w.accounts = append(w.accounts, reply["id"].(string))
		} else {
			w.orders = append(w.orders, placedOrder{id: reply["id"].(string), total: orderTotal(body)})
		}
		w.mu.Unlock()
	}
	return nil
}

func orderTotal(body map[string]any) int64 {
	total := int64(body["tax_cents"].(int))
	for _, it := range body["items"].([]map[string]any) {
		total += int64(it["quantity"].(int) * it["unit_price_cents"].(int))
	}
	return total
}

func (w *workload) summary() string {
	return fmt.Sprintf("201=%d 200=%d 409=%d 422=%d 404=%d", w.statuses[201].Load(), w.statuses[200].Load(),
		w.statuses[409].Load(), w.statuses[422].Load(), w.statuses[404].Load())
}

var productNames = []string{"Desk lamp", "Walnut bookshelf", "Espresso machine", "Linen shirt", "Trail running shoes",
	"Noise cancelling headphones", "Cast iron skillet", "Mechanical keyboard", "Yoga mat", "Ceramic teapot"}
