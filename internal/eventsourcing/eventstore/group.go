package eventstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Group commit. Every commit costs PostgreSQL a WAL flush, a round trip and
// the wake-ups of a backend and a client goroutine, whatever it holds: 500
// one-row INSERTs a second cost its backends 22-28% of a core here, the
// same rows as 100 five-row INSERTs 9-10% (pgbench at a fixed rate). So
// appends that arrive while one is being written wait for it and are then
// written together, in one statement, by the first of them. A lone append
// is written at once, as before; under load the groups grow by themselves,
// as many appends as arrived during the previous write.

// maxGroup bounds the appends written in one statement.
const maxGroup = 256

// groupTimeout bounds a group's write. The group does not end with the
// context of the append that happens to write it (its caller may go away
// while others wait on the same statement), so it needs a bound of its own.
const groupTimeout = 30 * time.Second

// appendGroup queues appends for group commit.
type appendGroup struct {
	maxWriters int // groups written at once (WithGroupWriters)

	mu      sync.Mutex
	queue   []*pendingAppend
	writing int // groups being written; at maxWriters, appends queue
}

// submit writes p, alone or in a group, and returns when p.err is final.
// It does not return early when ctx ends: p may be part of a statement
// already sent, and its outcome is then only known when that statement
// returns (at most groupTimeout).
func (g *appendGroup) submit(ctx context.Context, s *Store, p *pendingAppend) {
	g.mu.Lock()
	if g.writing >= g.maxWriters {
		p.done, p.lead = make(chan struct{}), make(chan struct{})
		g.queue = append(g.queue, p)
		g.mu.Unlock()
		select {
		case <-p.done:
			return
		case <-p.lead: // a writer that finished took p off the queue: p writes the next group
		}
	} else {
		g.writing++
		g.mu.Unlock()
	}
	g.mu.Lock()
	n := min(len(g.queue), maxGroup-1)
	batch := append([]*pendingAppend{p}, g.queue[:n]...)
	g.queue = g.queue[n:]
	g.mu.Unlock()

	s.writeGroup(context.WithoutCancel(ctx), batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.queue = g.queue[1:]
		close(next.lead)
	} else {
		g.writing--
		g.queue = nil // let the old backing array go
	}
	g.mu.Unlock()
}

// writeGroup writes batch and settles each request's outcome. A statement
// the server refused (a version conflict or duplicate event id in any one
// request) wrote nothing; each request is then written alone, so that only
// the conflicting one fails. Any other error (a lost connection) may have
// come after the commit, so it is every request's outcome, as it would have
// been for a lone append.
func (s *Store) writeGroup(ctx context.Context, batch []*pendingAppend) {
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	s.groupSize.Observe(float64(len(batch)))
	err := s.insert(ctx, s.pool, batch)
	var pgErr *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pgErr) {
		for _, p := range batch {
			if err := s.insert(ctx, s.pool, []*pendingAppend{p}); err != nil {
				p.err = err
			}
		}
	} else if err != nil {
		for _, p := range batch {
			p.err = err
		}
	}
	wrote := false
	for _, p := range batch {
		wrote = wrote || p.err == nil
		if p.done != nil {
			close(p.done)
		}
	}
	if wrote {
		s.onAppend()
	}
}
