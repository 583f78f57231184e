// Package statsmodel is the Redis read model of projector-stats: per-customer
// order statistics, a live balance cache per account and a top-customers
// sorted set, in the key layout of internal/readmodel/statskeys.
//
// Each event is applied by one Lua script that compares the stream's stored
// version with the event's version - 1 and, only if they match, makes the
// change, stores the new version and advances the checkpoint, all atomically.
// A redelivered or concurrently applied event is therefore a no-op, which is
// what lets two replicas overlap during a Kafka rebalance. A batch is sent as
// one pipeline of script calls: one round trip.
package statsmodel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/platform/redisclient"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/pkg/events"
)

// Client is the part of a go-redis client the model uses (*redis.Client
// satisfies it).
type Client interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// Namespace selects the key space the model reads and writes.
type Namespace struct {
	key   string // the active-namespace key (unused when fixed)
	name  string // the fixed namespace, or the default
	fixed bool
}

// ActiveNamespace follows statskeys.ActiveNamespaceKey (DefaultNamespace
// while it is unset), as the live projector must. The key is read inside
// each script, so a switch takes effect between two events, never inside one.
func ActiveNamespace() Namespace {
	return ActiveNamespaceAt(statskeys.ActiveNamespaceKey, statskeys.DefaultNamespace)
}

// ActiveNamespaceAt follows the namespace stored at key, or def while key is
// unset. Tests use it to exercise a switch without touching the live key.
func ActiveNamespaceAt(key, def string) Namespace { return Namespace{key: key, name: def} }

// FixedNamespace always uses ns: for tests, and for a rebuild that fills a
// fresh namespace before switching ActiveNamespaceKey to it.
func FixedNamespace(ns string) Namespace {
	return Namespace{key: statskeys.ActiveNamespaceKey, name: ns, fixed: true}
}

func (n Namespace) args() (keys []string, args []any, err error) {
	if n.name == "" || n.key == "" {
		return nil, nil, errors.New("stats model: empty namespace (use ActiveNamespace or FixedNamespace)")
	}
	fixed := "0"
	if n.fixed {
		fixed = "1"
	}
	return []string{n.key}, []any{n.name, fixed}, nil
}

// Model is the stats read model. It implements consumer.Model and is safe
// for concurrent use.
type Model struct {
	client  Client
	ns      Namespace
	now     func() time.Time
	salt    string
	scripts scripts
}

var _ consumer.Model = (*Model)(nil)

// Option configures a Model.
type Option func(*Model)

// WithClock sets the clock of the checkpoint's updated_at (tests).
func WithClock(now func() time.Time) Option { return func(m *Model) { m.now = now } }

// New returns the model over client in namespace ns.
func New(client Client, ns Namespace, opts ...Option) *Model {
	m := &Model{client: client, ns: ns, now: time.Now}
	for _, o := range opts {
		o(m)
	}
	m.scripts = newScripts(m.salt)
	return m
}

// Versions implements consumer.Model: one script call reads the version of
// every stream (0 when unknown) in the active namespace.
func (m *Model) Versions(ctx context.Context, streamIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	out := make(map[uuid.UUID]int64, len(streamIDs))
	if len(streamIDs) == 0 {
		return out, nil
	}
	keys, args, err := m.ns.args()
	if err != nil {
		return nil, err
	}
	for _, id := range streamIDs {
		args = append(args, id.String())
	}
	res, err := m.scripts.versions.Run(ctx, m.client, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read stats versions of %d streams: %w", len(streamIDs), err)
	}
	if len(res) != len(streamIDs) {
		return nil, fmt.Errorf("read stats versions: got %d answers for %d streams", len(res), len(streamIDs))
	}
	for i, id := range streamIDs {
		v, err := strconv.ParseInt(res[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("stats version of %s: %w", id, err)
		}
		out[id] = v
	}
	return out, nil
}

// Apply implements consumer.Model. Every event goes through the
// check-and-set script, so events at or below a stream's stored version, or
// beyond version+1, change nothing. The pipeline is not a transaction: if
// it fails halfway, a retry of the batch re-applies only what is missing.
func (m *Model) Apply(ctx context.Context, evs []events.Envelope) error {
	_, err := m.apply(ctx, evs)
	return err
}

// ApplyCount is Apply that also reports how many events changed the model
// (the others were already applied).
func (m *Model) ApplyCount(ctx context.Context, evs []events.Envelope) (int, error) {
	done, err := m.apply(ctx, evs)
	n := 0
	for _, d := range done {
		if d {
			n++
		}
	}
	return n, err
}

// TryApply implements consumer.Optimist: the check-and-set script applies
// exactly the events that continue their stream, so Apply already is the
// optimistic step; TryApply also says which events those were.
func (m *Model) TryApply(ctx context.Context, evs []events.Envelope) ([]bool, error) {
	return m.apply(ctx, evs)
}

// apply runs the script for every event and reports which changed the model.
func (m *Model) apply(ctx context.Context, evs []events.Envelope) ([]bool, error) {
	done := make([]bool, len(evs))
	if len(evs) == 0 {
		return done, nil
	}
	keys, nsArgs, err := m.ns.args()
	if err != nil {
		return nil, err
	}
	now := statskeys.FormatTime(m.now())
	calls := make([][]any, len(evs))
	for i, e := range evs {
		op, err := operation(e)
		if err != nil {
			return nil, err
		}
		calls[i] = append(append(append(make([]any, 0, 8+len(op)), nsArgs...),
			e.StreamID.String(), e.Version, e.Position, now), op...)
	}
	missing, err := m.run(ctx, keys, calls, done)
	if err == nil && missing {
		// Redis restarted or its script cache was flushed: load the script
		// and resend the whole batch. Events the first attempt applied (if
		// another client loaded the script meanwhile) are no-ops now, and
		// those it skipped because an earlier one was missing are applied.
		if lerr := m.scripts.apply.Load(ctx, m.client).Err(); lerr != nil {
			return nil, fmt.Errorf("load stats apply script: %w", lerr)
		}
		missing, err = m.run(ctx, keys, calls, done)
		if err == nil && missing {
			err = fmt.Errorf("apply %d events: %w", len(calls), redis.ErrNoScript)
		}
	}
	if err != nil {
		return nil, err
	}
	return done, nil
}

// run sends one pipeline of script calls and marks in done the events they
// applied. It reports whether the script was missing from Redis's cache for
// any.
func (m *Model) run(ctx context.Context, keys []string, calls [][]any, done []bool) (missing bool, err error) {
	pipe := m.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, args := range calls {
		cmds[i] = m.scripts.apply.EvalSha(ctx, pipe, keys, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isScriptReply(cmds) {
		return false, fmt.Errorf("apply %d events to redis: %w", len(calls), err)
	}
	var failed error
	for i, c := range cmds {
		n, err := c.Int()
		switch {
		case err == nil:
			done[i] = done[i] || n == 1
		case isNoScript(err):
			missing = true
		case failed == nil:
			failed = fmt.Errorf("apply event %d of %d (stream %s version %v): %w", i+1, len(calls), calls[i][2], calls[i][3], err)
		}
	}
	if missing {
		// A resend will meet the failure again, if it is one.
		return true, nil
	}
	return false, failed
}

// isScriptReply reports whether every command got an answer from Redis
// (possibly an error reply); then the per-command errors tell more than
// Exec's first one.
func isScriptReply(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			var rerr redis.Error
			if !errors.As(err, &rerr) {
				return false
			}
		}
	}
	return true
}

func isNoScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")
}

// operation maps an event onto the script's operation and arguments, with
// the account and order aggregates' fold semantics: AccountOpened sets the
// initial balance, FundsDeposited adds, FundsWithdrawn and DepositReversed
// subtract, AccountClosed closes; an order's total is items plus tax.
func operation(e events.Envelope) ([]any, error) {
	if e.Version < 1 {
		return nil, fmt.Errorf("event %s of stream %s: version %d is not positive", e.Type, e.StreamID, e.Version)
	}
	at := statskeys.FormatTime(e.RecordedAt)
	switch d := e.Data.(type) {
	case events.OrderPlaced:
		return []any{"order", "place", d.CustomerID.String(), d.TotalCents(), at}, nil
	case events.OrderPaid:
		return []any{"order", "pay", d.AmountCents}, nil
	case events.OrderShipped:
		return []any{"order", "ship"}, nil
	case events.OrderCancelled:
		return []any{"order", "cancel"}, nil
	case events.AccountOpened:
		return []any{"account", "open", at, d.InitialBalanceCents, d.Currency, d.Owner}, nil
	case events.FundsDeposited:
		return []any{"account", "delta", at, d.AmountCents}, nil
	case events.FundsWithdrawn:
		return []any{"account", "delta", at, -d.AmountCents}, nil
	case events.DepositReversed:
		return []any{"account", "delta", at, -d.AmountCents}, nil
	case events.AccountClosed:
		return []any{"account", "close", at}, nil
	}
	// An event type these stats do not interpret still advances its stream's
	// version; otherwise every later event of the stream would look like a
	// gap, forever.
	switch e.StreamType {
	case events.StreamOrder:
		return []any{"order", "noop"}, nil
	case events.StreamAccount:
		return []any{"account", "noop", at}, nil
	}
	return nil, fmt.Errorf("event %s (%T) of stream %s: unknown stream type %q", e.Type, e.Data, e.StreamID, e.StreamType)
}

// Transient reports whether err means Redis is unreachable or temporarily
// unable to serve (loading, read-only replica, failover), as opposed to an
// event the script rejects. The consumer retries transient errors forever.
func (m *Model) Transient(err error) bool {
	return redisclient.Unavailable(err) || isNoScript(err)
}

// Checkpoint is how far the model has got.
type Checkpoint struct {
	// Namespace is the namespace the checkpoint was read from.
	Namespace     string
	Position      int64
	EventsApplied int64
	// UpdatedAt is zero before the first event.
	UpdatedAt time.Time
}

// Checkpoint reads the checkpoint of the model's namespace.
func (m *Model) Checkpoint(ctx context.Context) (Checkpoint, error) {
	keys, args, err := m.ns.args()
	if err != nil {
		return Checkpoint{}, err
	}
	res, err := m.scripts.checkpoint.Run(ctx, m.client, keys, args...).Slice()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read stats checkpoint: %w", err)
	}
	if len(res) != 4 {
		return Checkpoint{}, fmt.Errorf("read stats checkpoint: %d values, want 4", len(res))
	}
	cp := Checkpoint{}
	cp.Namespace, _ = res[0].(string)
	if s, ok := res[1].(string); ok {
		if cp.Position, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Checkpoint{}, fmt.Errorf("stats checkpoint position %q: %w", s, err)
		}
	}
	if s, ok := res[2].(string); ok {
		if cp.EventsApplied, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Checkpoint{}, fmt.Errorf("stats checkpoint events_applied %q: %w", s, err)
		}
	}
	if s, ok := res[3].(string); ok {
		if cp.UpdatedAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return Checkpoint{}, fmt.Errorf("stats checkpoint updated_at %q: %w", s, err)
		}
	}
	return cp, nil
}
