// Package account is the Account (wallet) aggregate: decide turns a command
// and the current state into new events or a typed error; Evolve folds events
// into state. The balance never goes negative and a closed account takes no money.
package account

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain"
	"github.com/escqrs/platform/pkg/events"
)

// Status of an account.
type Status string

// Account statuses.
const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed"
)

// State is an account folded from its events. The zero State is "does not exist".
type State struct {
	ID           uuid.UUID `json:"account_id"`
	Owner        string    `json:"owner"`
	BalanceCents int64     `json:"balance_cents"`
	Currency     string    `json:"currency"`
	Status       Status    `json:"status"`
	Version      int64     `json:"version"`
	UpdatedAt    time.Time `json:"updated_at"`
	// ReversedDeposits holds the versions of deposits already reversed, so a
	// deposit is never reversed twice. Only reversals are kept: remembering
	// every deposit would grow the state (and its snapshots) with the stream.
	ReversedDeposits map[int64]bool `json:"reversed_deposits,omitempty"`
}

// Exists reports whether the account was opened.
func (s State) Exists() bool { return s.Version > 0 }

// Evolve applies one event to the state. It never fails: events are facts.
func Evolve(s State, e events.Envelope) State {
	s.ID = e.StreamID
	s.Version = e.Version
	s.UpdatedAt = e.RecordedAt
	switch d := e.Data.(type) {
	case events.AccountOpened:
		s.Owner, s.BalanceCents, s.Currency, s.Status = d.Owner, d.InitialBalanceCents, d.Currency, StatusOpen
	case events.FundsDeposited:
		s.BalanceCents += d.AmountCents
	case events.FundsWithdrawn:
		s.BalanceCents -= d.AmountCents
	case events.DepositReversed:
		s.BalanceCents -= d.AmountCents
		reversed := make(map[int64]bool, len(s.ReversedDeposits)+1)
		for v := range s.ReversedDeposits {
			reversed[v] = true
		}
		reversed[d.DepositVersion] = true
		s.ReversedDeposits = reversed
	case events.AccountClosed:
		s.Status = StatusClosed
	}
	return s
}

// Fold builds state from a sequence of events.
func Fold(s State, evs []events.Envelope) State {
	for _, e := range evs {
		s = Evolve(s, e)
	}
	return s
}

// Open is the command that creates an account.
type Open struct {
	Owner               string
	InitialBalanceCents int64
	Currency            string
}

// DepositFunds adds money.
type DepositFunds struct {
	AmountCents int64
	Source      string
}

// Withdraw takes money.
type Withdraw struct {
	AmountCents int64
	Reason      string
}

// Close ends the account.
type Close struct {
	Reason string
}

// ReverseDeposit compensates a deposit recorded in error. Deposit is the
// event at DepositVersion as the application read it from the stream (nil
// when that version is not a deposit).
type ReverseDeposit struct {
	DepositVersion int64
	Reason         string
	Deposit        *events.FundsDeposited
}

// DecideOpen validates an Open command against the state.
func DecideOpen(s State, c Open) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.Owner != "" && len(c.Owner) <= 200, "owner", "must be 1 to 200 characters")
	v.Check(c.InitialBalanceCents >= 0, "initial_balance_cents", "must not be negative")
	v.Check(domain.ValidCurrency(c.Currency), "currency", "must be a three-letter ISO 4217 code")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if s.Exists() {
		return nil, domain.ErrAlreadyExists
	}
	return []events.Payload{events.AccountOpened{Owner: c.Owner, InitialBalanceCents: c.InitialBalanceCents, Currency: c.Currency}}, nil
}

// DecideDeposit validates a deposit.
func DecideDeposit(s State, c DepositFunds) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.AmountCents > 0, "amount_cents", "must be positive")
	v.Check(len(c.Source) <= 200, "source", "must be at most 200 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := requireOpen(s); err != nil {
		return nil, err
	}
	if c.AmountCents > math.MaxInt64-s.BalanceCents {
		// The balance is an int64: past its maximum it would wrap to a negative number.
		return nil, &domain.ValidationError{Fields: []domain.FieldError{{
			Field: "amount_cents", Message: fmt.Sprintf("would overflow the balance %d", s.BalanceCents)}}}
	}
	return []events.Payload{events.FundsDeposited{AmountCents: c.AmountCents, Source: c.Source}}, nil
}

// DecideWithdraw validates a withdrawal; the balance may never go negative.
func DecideWithdraw(s State, c Withdraw) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.AmountCents > 0, "amount_cents", "must be positive")
	v.Check(len(c.Reason) <= 200, "reason", "must be at most 200 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := requireOpen(s); err != nil {
		return nil, err
	}
	if c.AmountCents > s.BalanceCents {
		return nil, fmt.Errorf("withdraw %d from balance %d: %w", c.AmountCents, s.BalanceCents, domain.ErrInsufficientFunds)
	}
	return []events.Payload{events.FundsWithdrawn{AmountCents: c.AmountCents, Reason: c.Reason}}, nil
}

// DecideClose closes an open account.
func DecideClose(s State, c Close) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(len(c.Reason) <= 200, "reason", "must be at most 200 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := requireOpen(s); err != nil {
		return nil, err
	}
	return []events.Payload{events.AccountClosed{Reason: c.Reason}}, nil
}

// DecideReverseDeposit compensates an earlier deposit. The reversal may not
// make the balance negative, and a deposit can be reversed only once.
func DecideReverseDeposit(s State, c ReverseDeposit) ([]events.Payload, error) {
	var v domain.Validator
	v.Check(c.DepositVersion > 0, "deposit_version", "must be the version of a deposit event")
	v.Check(c.Reason != "" && len(c.Reason) <= 200, "reason", "must be 1 to 200 characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.ErrNotFound
	}
	dep := c.Deposit
	if dep == nil {
		return nil, &domain.ValidationError{Fields: []domain.FieldError{{Field: "deposit_version", Message: fmt.Sprintf("version %d is not a deposit of this account", c.DepositVersion)}}}
	}
	if s.ReversedDeposits[c.DepositVersion] {
		return nil, fmt.Errorf("deposit %d already reversed: %w", c.DepositVersion, domain.ErrInvalidTransition)
	}
	if dep.AmountCents > s.BalanceCents {
		return nil, fmt.Errorf("reverse %d from balance %d: %w", dep.AmountCents, s.BalanceCents, domain.ErrInsufficientFunds)
	}
	return []events.Payload{events.DepositReversed{DepositVersion: c.DepositVersion, AmountCents: dep.AmountCents, Reason: c.Reason}}, nil
}

func requireOpen(s State) error {
	if !s.Exists() {
		return domain.ErrNotFound
	}
	if s.Status == StatusClosed {
		return domain.ErrAccountClosed
	}
	return nil
}
