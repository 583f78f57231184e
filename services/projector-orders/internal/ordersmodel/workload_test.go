package ordersmodel_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

// accountPayload is the event at version v of account i in workload: opened
// with 10000, deposits on even versions, a reversal of the first deposit at
// 5, withdrawals otherwise; the balance never goes negative.
func accountPayload(i int, v int64, last bool) events.Payload {
	switch {
	case v == 1:
		return events.AccountOpened{Owner: fmt.Sprintf("owner-%d", i), InitialBalanceCents: 10000, Currency: "EUR"}
	case last:
		return events.AccountClosed{Reason: "workload done"}
	case v == 5:
		return events.DepositReversed{DepositVersion: 2, AmountCents: int64(100 * (i + 1)), Reason: "duplicate"}
	case v%2 == 0:
		return events.FundsDeposited{AmountCents: int64(100 * (i + 1)), Source: "card"}
	default:
		return events.FundsWithdrawn{AmountCents: 30, Reason: "fee"}
	}
}

// orderPayload is the event at version v (1..3) of order i in workload.
func orderPayload(i int, v int64) events.Payload {
	items := []events.LineItem{{SKU: fmt.Sprintf("SKU-%d", i%7), Name: "Widget", Quantity: int64(1 + i%3), UnitPriceCents: 999}}
	placed := events.OrderPlaced{CustomerID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "customer-%d", i%5)),
		Items: items, Currency: "EUR", TaxCents: int64(i)}
	switch {
	case v == 1:
		return placed
	case v == 2 && i%4 == 3:
		return events.OrderCancelled{Reason: "changed mind"}
	case v == 2:
		return events.OrderPaid{AmountCents: placed.TotalCents(), Method: "card"}
	case i%4 == 1:
		return events.OrderCancelled{Reason: "refund"}
	default:
		return events.OrderShipped{Carrier: "UPS", TrackingNumber: fmt.Sprintf("1Z%06d", i)}
	}
}

// workload interleaves nAccounts accounts of perAccount events and nOrders
// orders of up to 3 events round-robin, with positions 1, 2, ...
func workload(nAccounts, nOrders, perAccount int) []events.Envelope {
	accounts := make([]uuid.UUID, nAccounts)
	for i := range accounts {
		accounts[i] = uuid.Must(uuid.NewV7())
	}
	orders := make([]uuid.UUID, nOrders)
	for i := range orders {
		orders[i] = uuid.Must(uuid.NewV7())
	}
	var out []events.Envelope
	pos := int64(0)
	for round := int64(1); round <= int64(perAccount); round++ {
		for i, id := range accounts {
			pos++
			out = append(out, ev(id, round, pos, accountPayload(i, round, round == int64(perAccount))))
		}
		for i, id := range orders {
			if round > 3 || (round == 3 && i%4 == 3) {
				continue // cancelled before payment: two events
			}
			pos++
			out = append(out, ev(id, round, pos, orderPayload(i, round)))
		}
	}
	return out
}

// generator produces an endless, realistic stream of events: new orders
// and accounts keep arriving, live ones advance, a batch touches many
// streams and some of them more than once.
type generator struct {
	rnd  *rand.Rand
	pos  int64
	n    int
	live []*liveStream
}

type liveStream struct {
	id      uuid.UUID
	n       int
	version int64
	account bool
}

func newGenerator(seed uint64) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(seed, seed))}
}

func (g *generator) next() events.Envelope {
	g.pos++
	r := g.rnd.IntN(100)
	var s *liveStream
	switch {
	case r < 25 || len(g.live) < 100:
		s = &liveStream{id: uuid.Must(uuid.NewV7()), n: g.n, account: r%5 == 0}
		g.n++
		g.live = append(g.live, s)
	default:
		i := g.rnd.IntN(len(g.live))
		s = g.live[i]
	}
	s.version++
	var p events.Payload
	if s.account {
		p = accountPayload(s.n, s.version, false)
	} else {
		p = orderPayload(s.n, s.version)
	}
	if !s.account && (s.version == 3 || (s.version == 2 && s.n%4 == 3)) || len(g.live) > 5000 && s.version > 1 {
		// Finished orders (and, to bound memory, old streams) stop receiving events.
		for i, l := range g.live {
			if l == s {
				g.live[i] = g.live[len(g.live)-1]
				g.live = g.live[:len(g.live)-1]
				break
			}
		}
	}
	return ev(s.id, s.version, g.pos, p)
}

func (g *generator) batch(n int) []events.Envelope {
	out := make([]events.Envelope, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}
