// Package app is the command side's application layer: it loads an
// aggregate, asks the pure domain code to decide, and appends the resulting
// events with optimistic concurrency and idempotency. It knows nothing of HTTP.
package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

var (
	// ErrPreconditionFailed means If-Match named a version the stream is not at.
	ErrPreconditionFailed = errors.New("stream is not at the version given in If-Match")
	// ErrIdempotencyKeyReused means a key came back with a different request.
	ErrIdempotencyKeyReused = errors.New("idempotency key was used for a different request")
)

// Store is the event store as the application uses it.
type Store interface {
	aggregate.Store
	Append(ctx context.Context, req eventstore.AppendRequest) ([]events.Envelope, error)
}

// Idempotency remembers the first response to each Idempotency-Key.
type Idempotency interface {
	Lookup(ctx context.Context, key string) (Recorded, bool, error)
	Record(ctx context.Context, tx pgx.Tx, key string, rec Recorded) error
}

// Recorded is a stored first response.
type Recorded struct {
	RequestHash string
	Result      Result
}

// Result is what a successful command returns.
type Result struct {
	ID       uuid.UUID `json:"id"`
	Version  int64     `json:"version"`
	Position int64     `json:"position"`
	Status   string    `json:"status,omitempty"`
	Created  bool      `json:"created"`
	// Replayed is true when the result was returned from the idempotency
	// record instead of a new append.
	Replayed bool `json:"-"`
}

// Request carries what every command shares besides its own fields.
type Request struct {
	StreamID uuid.UUID // zero on create: a new UUIDv7 is chosen
	// IfMatch, when set, is the version the client expects the stream at.
	IfMatch *int64
	// IdempotencyKey and RequestHash make a retry return the first result.
	IdempotencyKey string
	RequestHash    string
	Metadata       events.Metadata
}

// Service executes commands.
type Service struct {
	store       Store
	idempotency Idempotency
	accounts    *aggregate.Repository[account.State]
	orders      *aggregate.Repository[order.State]
	// MaxRetries bounds how often a command without If-Match is re-decided
	// after losing a version race.
	maxRetries int
	now        func() time.Time
}

// NewService wires the application.
func NewService(store Store, idem Idempotency, accounts *aggregate.Repository[account.State], orders *aggregate.Repository[order.State]) *Service {
	return &Service{store: store, idempotency: idem, accounts: accounts, orders: orders, maxRetries: 25, now: time.Now}
}

// execute is the one path every command takes: idempotency check, load,
// If-Match check, decide, append (retrying lost races when the client did
// not pin a version), record the idempotent response, snapshot.
func execute[S any](ctx context.Context, s *Service, repo *aggregate.Repository[S], kind aggregate.Kind[S], req Request,
	create bool, decide func(S) ([]events.Payload, error), status func(S) string) (Result, error) {
	if req.IdempotencyKey != "" {
		if res, ok, err := s.replay(ctx, req); ok || err != nil {
			return res, err
		}
	}
	// A stream under a freshly generated UUIDv7 cannot exist yet: skip the load.
	fresh := false
	if create && req.StreamID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return Result{}, fmt.Errorf("new id: %w", err)
		}
		req.StreamID, fresh = id, true
	}
	for attempt := 0; ; attempt++ {
		var state S
		if !fresh {
			var err error
			if state, err = repo.Load(ctx, req.StreamID); err != nil {
				return Result{}, err
			}
		}
		version := kind.Version(state)
		if req.IfMatch != nil && *req.IfMatch != version {
			return Result{}, fmt.Errorf("if-match %d, stream at %d: %w", *req.IfMatch, version, ErrPreconditionFailed)
		}
		payloads, err := decide(state)
		if err != nil {
			return Result{}, err
		}
		newEvents := make([]eventstore.NewEvent, len(payloads))
		occurred := s.now().UTC()
		for i, p := range payloads {
			newEvents[i] = eventstore.NewEvent{Data: p, Metadata: req.Metadata, OccurredAt: occurred}
		}
		var (
			res     Result
			evolved bool
		)
		result := func(appended []events.Envelope) Result {
			if !evolved {
				for _, e := range appended {
					state = kind.Evolve(state, e)
				}
				evolved = true
			}
			last := appended[len(appended)-1]
			return Result{ID: req.StreamID, Version: last.Version, Position: last.Position, Status: status(state), Created: create}
		}
		appendReq := eventstore.AppendRequest{StreamType: kind.StreamType, StreamID: req.StreamID, ExpectedVersion: version, Events: newEvents}
		if req.IdempotencyKey != "" {
			// The first response is recorded in the append's own transaction.
			appendReq.InTx = func(ctx context.Context, tx pgx.Tx, appended []events.Envelope) error {
				res = result(appended)
				return s.idempotency.Record(ctx, tx, req.IdempotencyKey, Recorded{RequestHash: req.RequestHash, Result: res})
			}
		}
		appended, err := s.store.Append(ctx, appendReq)
		switch {
		case err == nil:
			res = result(appended)
			repo.AfterAppend(ctx, state, version, appended[len(appended)-1].RecordedAt)
			return res, nil
		case errors.Is(err, ErrKeyTaken):
			// A concurrent request with the same key won: return its result.
			res, _, err := s.replay(ctx, req)
			return res, err
		case errors.Is(err, eventstore.ErrVersionConflict) && req.IfMatch != nil:
			return Result{}, fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		case errors.Is(err, eventstore.ErrVersionConflict) && attempt < s.maxRetries && !create:
			// Another writer got there first; re-decide on the new state.
			backoff := time.Duration(rand.IntN(1000*(attempt+1))) * time.Microsecond
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(backoff):
			}
		default:
			return Result{}, err
		}
	}
}

func (s *Service) replay(ctx context.Context, req Request) (Result, bool, error) {
	rec, ok, err := s.idempotency.Lookup(ctx, req.IdempotencyKey)
	if err != nil || !ok {
		return Result{}, false, err
	}
	if rec.RequestHash != req.RequestHash {
		return Result{}, true, ErrIdempotencyKeyReused
	}
	rec.Result.Replayed = true
	return rec.Result, true, nil
}

// ErrKeyTaken is returned by Idempotency.Record when the key is already
// recorded, which rolls the append back.
var ErrKeyTaken = errors.New("idempotency key already recorded")
