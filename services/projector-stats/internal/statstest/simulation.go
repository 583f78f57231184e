package statstest

import (
	"fmt"
	"math/rand/v2"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/pkg/events"
)

// Simulation drives the domain aggregates with random valid commands, so
// that the events obey every business rule (pay the exact total, never
// overdraw, reverse a deposit once...). It is not safe for concurrent use.
type Simulation struct {
	rng       *rand.Rand
	emit      Emit
	customers []uuid.UUID
	orders    map[uuid.UUID]order.State
	orderIDs  []uuid.UUID
	accounts  map[uuid.UUID]account.State
	deposits  map[uuid.UUID][]events.Envelope
	acctIDs   []uuid.UUID
}

// NewSimulation returns a simulation of orders by the given number of
// customers and of accounts, deterministic for a seed (apart from ids).
func NewSimulation(seed uint64, customers int, emit Emit) *Simulation {
	s := &Simulation{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), emit: emit,
		orders: map[uuid.UUID]order.State{}, accounts: map[uuid.UUID]account.State{}, deposits: map[uuid.UUID][]events.Envelope{},
	}
	for range customers {
		s.customers = append(s.customers, uuid.New())
	}
	return s
}

// Run takes n random steps; each step emits one event. It stops at the
// first failed emit.
func (s *Simulation) Run(n int) error {
	for i := 0; i < n; {
		ok, err := s.step()
		if err != nil {
			return err
		}
		if ok {
			i++
		}
	}
	return nil
}

func (s *Simulation) step() (bool, error) {
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

func (s *Simulation) placeOrder() (bool, error) {
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

func (s *Simulation) advanceOrder(id uuid.UUID) (bool, error) {
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

func (s *Simulation) decideOrder(id uuid.UUID, decide func(order.State) ([]events.Payload, error)) (bool, error) {
	st := s.orders[id]
	payloads, err := decide(st)
	if err != nil {
		return false, nil // refused by the domain: not an event
	}
	for _, p := range payloads {
		e, err := s.emit(events.StreamOrder, id, st.Version, p)
		if err != nil {
			return false, err
		}
		st = order.Evolve(st, e)
	}
	s.orders[id] = st
	return true, nil
}

func (s *Simulation) openAccount() (bool, error) {
	id := uuid.New()
	s.acctIDs = append(s.acctIDs, id)
	c := account.Open{Owner: fmt.Sprintf("owner-%d", len(s.acctIDs)), InitialBalanceCents: s.rng.Int64N(50_000), Currency: "EUR"}
	return s.decideAccount(id, func(st account.State) ([]events.Payload, error) { return account.DecideOpen(st, c) })
}

func (s *Simulation) advanceAccount(id uuid.UUID) (bool, error) {
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
			return false, nil
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

func (s *Simulation) decideAccount(id uuid.UUID, decide func(account.State) ([]events.Payload, error)) (bool, error) {
	st := s.accounts[id]
	payloads, err := decide(st)
	if err != nil {
		return false, nil
	}
	for _, p := range payloads {
		e, err := s.emit(events.StreamAccount, id, st.Version, p)
		if err != nil {
			return false, err
		}
		if e.Type == events.TypeFundsDeposited {
			s.deposits[id] = append(s.deposits[id], e)
		}
		st = account.Evolve(st, e)
	}
	s.accounts[id] = st
	return true, nil
}
