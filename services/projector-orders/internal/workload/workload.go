// Package workload generates realistic event histories of accounts and
// orders for the rebuild tests and the rebuild benchmark: every event is
// decided by the domain aggregates (Decide functions over the state folded
// with Evolve), streams are interleaved, and each has several events.
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// Event is one generated event of a stream, not yet stored.
type Event struct {
	StreamType events.StreamType
	StreamID   uuid.UUID
	Version    int64
	Data       events.Payload
	Metadata   events.Metadata
}

// NewEvent is e as eventstore.Store.Append takes it.
func (e Event) NewEvent() eventstore.NewEvent {
	return eventstore.NewEvent{Data: e.Data, Metadata: e.Metadata}
}

// Generator produces an endless history: new accounts and orders keep
// arriving, live ones advance through their lives (orders are placed, paid,
// shipped or cancelled; accounts take deposits, withdrawals, reversals and
// are eventually closed) and finished ones get no more events. It is not
// safe for concurrent use.
type Generator struct {
	rnd       *rand.Rand
	live      []*stream
	customers []uuid.UUID
	n         int
	now       time.Time
}

type stream struct {
	id       uuid.UUID
	n        int
	account  bool
	acct     account.State
	ord      order.State
	deposits map[int64]events.FundsDeposited
}

// maxLive bounds the streams in flight, so each gets several events.
const maxLive = 2000

// New returns a generator; the same seed gives the same payloads (ids are
// fresh UUIDv7s).
func New(seed uint64) *Generator {
	g := &Generator{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Now()}
	for range 500 {
		g.customers = append(g.customers, uuid.Must(uuid.NewV7()))
	}
	return g
}

// Next returns the next event.
func (g *Generator) Next() Event {
	for {
		if e, ok := g.try(); ok {
			return e
		}
	}
}

// Take returns the next n events.
func (g *Generator) Take(n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func (g *Generator) try() (Event, bool) {
	r := g.rnd.IntN(100)
	if r < 22 && len(g.live) < maxLive || len(g.live) < 50 {
		s := &stream{id: uuid.Must(uuid.NewV7()), n: g.n, account: r%4 == 0}
		g.n++
		g.live = append(g.live, s)
		return g.decide(s)
	}
	i := g.rnd.IntN(len(g.live))
	e, ok := g.decide(g.live[i])
	if done := g.live[i].finished(); done {
		g.live[i] = g.live[len(g.live)-1]
		g.live = g.live[:len(g.live)-1]
	}
	return e, ok
}

func (s *stream) finished() bool {
	if s.account {
		return s.acct.Status == account.StatusClosed
	}
	return s.ord.Status.Final()
}

// decide runs one command against s; ok is false when the domain refused
// it (e.g. a withdrawal larger than the balance) and nothing happened.
func (g *Generator) decide(s *stream) (Event, bool) {
	var (
		ps  []events.Payload
		err error
	)
	if s.account {
		ps, err = g.decideAccount(s)
	} else {
		ps, err = g.decideOrder(s)
	}
	if err != nil || len(ps) != 1 {
		return Event{}, false
	}
	st := events.StreamOrder
	version := s.ord.Version + 1
	if s.account {
		st, version = events.StreamAccount, s.acct.Version+1
	}
	g.now = g.now.Add(time.Millisecond)
	env := events.Envelope{StreamType: st, StreamID: s.id, Version: version, Type: ps[0].EventType(), Data: ps[0], RecordedAt: g.now}
	if s.account {
		s.acct = account.Evolve(s.acct, env)
		if d, ok := ps[0].(events.FundsDeposited); ok {
			if s.deposits == nil {
				s.deposits = map[int64]events.FundsDeposited{}
			}
			s.deposits[version] = d
		}
	} else {
		s.ord = order.Evolve(s.ord, env)
	}
	corr := uuid.Must(uuid.NewV7()).String()
	return Event{StreamType: st, StreamID: s.id, Version: version, Data: ps[0],
		Metadata: events.Metadata{CorrelationID: corr, CausationID: corr, Actor: "workload"}}, true
}

var (
	carriers = []string{"UPS", "DHL", "PostNord", "FedEx"}
	methods  = []string{"card", "invoice", "wallet"}
	sources  = []string{"card", "bank transfer", "refund", "salary"}
	reasons  = []string{"atm", "purchase", "fee", "transfer"}
)

func (g *Generator) decideAccount(s *stream) ([]events.Payload, error) {
	a := s.acct
	if !a.Exists() {
		return account.DecideOpen(a, account.Open{Owner: fmt.Sprintf("owner-%d", s.n),
			InitialBalanceCents: int64(g.rnd.IntN(50_000)), Currency: "EUR"})
	}
	r := g.rnd.IntN(100)
	switch {
	case a.Version >= 25 || a.Version >= 6 && r < 3:
		return account.DecideClose(a, account.Close{Reason: "customer request"})
	case r < 50:
		return account.DecideDeposit(a, account.DepositFunds{AmountCents: int64(100 + g.rnd.IntN(20_000)),
			Source: sources[g.rnd.IntN(len(sources))]})
	case r < 90:
		return account.DecideWithdraw(a, account.Withdraw{AmountCents: int64(50 + g.rnd.IntN(15_000)),
			Reason: reasons[g.rnd.IntN(len(reasons))]})
	default:
		for v, d := range s.deposits {
			if !a.ReversedDeposits[v] {
				return account.DecideReverseDeposit(a, account.ReverseDeposit{DepositVersion: v, Reason: "chargeback", Deposit: &d})
			}
		}
		return nil, fmt.Errorf("no deposit to reverse")
	}
}

func (g *Generator) decideOrder(s *stream) ([]events.Payload, error) {
	o := s.ord
	r := g.rnd.IntN(100)
	switch o.Status {
	case "":
		items := make([]events.LineItem, 1+g.rnd.IntN(4))
		for i := range items {
			sku := g.rnd.IntN(1000)
			items[i] = events.LineItem{SKU: fmt.Sprintf("SKU-%04d", sku), Name: fmt.Sprintf("Product %d", sku),
				Quantity: int64(1 + g.rnd.IntN(5)), UnitPriceCents: int64(99 + g.rnd.IntN(20_000))}
		}
		c := order.Place{CustomerID: g.customers[g.rnd.IntN(len(g.customers))], Items: items, Currency: "EUR"}
		if r < 80 {
			c.TaxCents = int64(g.rnd.IntN(2_000))
			c.ShippingAddress = &events.Address{Line1: fmt.Sprintf("%d Main Street", 1+g.rnd.IntN(200)), City: "Uppsala",
				PostalCode: fmt.Sprintf("75%03d", g.rnd.IntN(1000)), Country: "SE"}
		}
		return order.DecidePlace(o, c)
	case order.StatusPlaced:
		if r < 15 {
			return order.DecideCancel(o, order.Cancel{Reason: "changed mind"})
		}
		return order.DecidePay(o, order.Pay{AmountCents: o.TotalCents, Method: methods[g.rnd.IntN(len(methods))]})
	default: // paid
		if r < 10 {
			return order.DecideCancel(o, order.Cancel{Reason: "refund"})
		}
		return order.DecideShip(o, order.Ship{Carrier: carriers[g.rnd.IntN(len(carriers))],
			TrackingNumber: fmt.Sprintf("TRK%09d", g.rnd.IntN(1_000_000_000))})
	}
}

// Copier is what CopyEvents writes with; *pgx.Conn, *pgxpool.Pool and
// pgx.Tx satisfy it.
type Copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// CopyEvents writes evs into the event store's events table with one COPY,
// in order: one transaction, so positions follow the slice order. It is the
// fast way to fill a store with history for a benchmark or a test; it
// bypasses Append's version guard, so evs must be gap-free per stream and
// continue what the store holds.
func CopyEvents(ctx context.Context, db Copier, evs []Event) error {
	now := time.Now().UTC()
	rows := pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
		e := evs[i]
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.Data.EventType(), err)
		}
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		at := now.Add(time.Duration(i) * time.Microsecond)
		return []any{uuid.Must(uuid.NewV7()), string(e.StreamType), e.StreamID, e.Version, e.Data.EventType(),
			events.Default.CurrentVersion(e.Data.EventType()), data, meta, at, at}, nil
	})
	_, err := db.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"event_id", "stream_type", "stream_id", "version", "type", "schema_version", "data", "metadata", "occurred_at", "recorded_at"}, rows)
	if err != nil {
		return fmt.Errorf("copy %d events: %w", len(evs), err)
	}
	return nil
}
