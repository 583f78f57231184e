package relay

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Notifier wakes the relay (in whichever replica leads) after appends.
//
// It does not NOTIFY inside the append transaction: PostgreSQL serialises
// the commits of notifying transactions on a global lock, which would cap
// append throughput. Instead Poke is called after each commit, and at most
// one NOTIFY is in flight per process, coalescing bursts. A lost poke (crash
// between commit and notify) costs at most one relay poll interval.
type Notifier struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	poke  chan struct{}
	local func() bool // wakes this process's relay if it leads; nil: none
}

// WakeLocal makes Poke call wake (Relay.Wake) first and send no NOTIFY when
// it reports that this process's relay leads: with one command API
// replica, appends then cost PostgreSQL no notification at all. Call it
// before the first Poke.
func (n *Notifier) WakeLocal(wake func() bool) { n.local = wake }

// NewNotifier returns a Notifier; call Run to start it.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	return &Notifier{pool: pool, log: log, poke: make(chan struct{}, 1)}
}

// Poke asks for a notification without blocking.
func (n *Notifier) Poke() {
	if n.local != nil && n.local() {
		return
	}
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// Run sends notifications until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.poke:
			// A NOTIFY commits like a write (WAL flush included). Its
			// loss in a crash is harmless, so it skips the flush wait:
			// set_config(..., true) applies to this statement's own transaction.
			if _, err := n.pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`, Channel); err != nil && ctx.Err() == nil {
				n.log.Debug("notify relay", "error", err)
			}
		}
	}
}
