package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

func accountStatus(s account.State) string { return string(s.Status) }
func orderStatus(s order.State) string     { return string(s.Status) }

// OpenAccount creates an account.
func (s *Service) OpenAccount(ctx context.Context, req Request, c account.Open) (Result, error) {
	return execute(ctx, s, s.accounts, aggregate.Accounts, req, true,
		func(st account.State) ([]events.Payload, error) { return account.DecideOpen(st, c) }, accountStatus)
}

// Deposit adds money to an account.
func (s *Service) Deposit(ctx context.Context, req Request, c account.DepositFunds) (Result, error) {
	return execute(ctx, s, s.accounts, aggregate.Accounts, req, false,
		func(st account.State) ([]events.Payload, error) { return account.DecideDeposit(st, c) }, accountStatus)
}

// Withdraw takes money from an account.
func (s *Service) Withdraw(ctx context.Context, req Request, c account.Withdraw) (Result, error) {
	return execute(ctx, s, s.accounts, aggregate.Accounts, req, false,
		func(st account.State) ([]events.Payload, error) { return account.DecideWithdraw(st, c) }, accountStatus)
}

// CloseAccount closes an account.
func (s *Service) CloseAccount(ctx context.Context, req Request, c account.Close) (Result, error) {
	return execute(ctx, s, s.accounts, aggregate.Accounts, req, false,
		func(st account.State) ([]events.Payload, error) { return account.DecideClose(st, c) }, accountStatus)
}

// ReverseDeposit appends the compensating event for an earlier deposit. The
// deposit itself is read from the stream: the aggregate state does not keep
// every deposit (that would grow it, and its snapshots, without bound).
func (s *Service) ReverseDeposit(ctx context.Context, req Request, c account.ReverseDeposit) (Result, error) {
	dep, err := s.depositAt(ctx, req.StreamID, c.DepositVersion)
	if err != nil {
		return Result{}, err
	}
	c.Deposit = dep
	return execute(ctx, s, s.accounts, aggregate.Accounts, req, false,
		func(st account.State) ([]events.Payload, error) { return account.DecideReverseDeposit(st, c) }, accountStatus)
}

func (s *Service) depositAt(ctx context.Context, id uuid.UUID, version int64) (*events.FundsDeposited, error) {
	if version <= 0 {
		return nil, nil
	}
	var found *events.FundsDeposited
	err := s.store.ScanStream(ctx, id, streamRange(version), func(e events.Envelope) error {
		if d, ok := e.Data.(events.FundsDeposited); ok {
			found = &d
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read deposit %s@%d: %w", id, version, err)
	}
	return found, nil
}

// PlaceOrder creates an order.
func (s *Service) PlaceOrder(ctx context.Context, req Request, c order.Place) (Result, error) {
	return execute(ctx, s, s.orders, aggregate.Orders, req, true,
		func(st order.State) ([]events.Payload, error) { return order.DecidePlace(st, c) }, orderStatus)
}

// PayOrder pays an order.
func (s *Service) PayOrder(ctx context.Context, req Request, c order.Pay) (Result, error) {
	return execute(ctx, s, s.orders, aggregate.Orders, req, false,
		func(st order.State) ([]events.Payload, error) { return order.DecidePay(st, c) }, orderStatus)
}

// ShipOrder ships an order.
func (s *Service) ShipOrder(ctx context.Context, req Request, c order.Ship) (Result, error) {
	return execute(ctx, s, s.orders, aggregate.Orders, req, false,
		func(st order.State) ([]events.Payload, error) { return order.DecideShip(st, c) }, orderStatus)
}

// CancelOrder cancels an order.
func (s *Service) CancelOrder(ctx context.Context, req Request, c order.Cancel) (Result, error) {
	return execute(ctx, s, s.orders, aggregate.Orders, req, false,
		func(st order.State) ([]events.Payload, error) { return order.DecideCancel(st, c) }, orderStatus)
}

func streamRange(version int64) eventstore.StreamRange {
	return eventstore.StreamRange{After: version - 1, Until: version}
}
