// Package changefeed wakes the query API's ?min_version reads when
// projector-orders commits a change to the row they wait for. It LISTENs on
// ordersdb.ChangesChannel, on a connection of its own, and hands each
// notification's stream ids to the reads watching them, so that a read
// answers as soon as the change is visible instead of at its next poll of
// the tables, and a waiting read costs Postgres no query until then.
//
// A notification can be missed: while the feed is reconnecting, or for rows
// a rebuild writes without announcing them. So a read still re-reads now and
// then (httpapi), fast while the feed is down, and the feed wakes every
// waiting read each time it (re)connects.
package changefeed

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
)

// Feed dispatches change notifications to watchers. Its zero value is not
// usable; call New.
type Feed struct {
	connect func(context.Context) (*pgx.Conn, error)
	log     *slog.Logger

	mu       sync.Mutex
	watchers map[uuid.UUID]map[chan struct{}]struct{}

	live          atomic.Bool
	up            prometheus.Gauge
	notifications prometheus.Counter
}

// New returns a feed that listens on the connections connect opens; Run
// starts it. reg may be nil.
func New(connect func(context.Context) (*pgx.Conn, error), log *slog.Logger, reg prometheus.Registerer) *Feed {
	f := &Feed{
		connect:  connect,
		log:      log,
		watchers: map[uuid.UUID]map[chan struct{}]struct{}{},
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "query_changefeed_up",
			Help: "1 while the query API listens for projector-orders' change notifications (?min_version reads wake on them)."}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{Name: "query_changefeed_notifications_total",
			Help: "Change notifications received from projector-orders."}),
	}
	if reg != nil {
		reg.MustRegister(f.up, f.notifications)
	}
	return f
}

// Live reports whether the feed is listening: a watcher then learns of every
// announced change of its row.
func (f *Feed) Live() bool { return f.live.Load() }

// Watch returns a channel that receives a value after each announced change
// of stream id (several changes may leave one value), and a stop function
// that must be called when the caller stops waiting. Watch before reading
// the row, so that a change committed after the read is not missed.
func (f *Feed) Watch(id uuid.UUID) (changed <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	set := f.watchers[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		f.watchers[id] = set
	}
	set[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(set, ch)
		if len(set) == 0 { // set is still the id's: a set leaves the map only once empty
			delete(f.watchers, id)
		}
		f.mu.Unlock()
	}
}

// Run listens until ctx ends, reconnecting with backoff when the connection
// fails.
func (f *Feed) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := f.listen(ctx)
		f.live.Store(false)
		f.up.Set(0)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("change feed down; ?min_version reads poll until it is back", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listen holds one connection and dispatches its notifications.
func (f *Feed) listen(ctx context.Context) error {
	conn, err := f.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+ordersdb.ChangesChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f.live.Store(true)
	f.up.Set(1)
	// Changes committed while no one listened went unannounced.
	f.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		f.notifications.Inc()
		f.deliver(n.Payload)
	}
}

// deliver wakes the watchers of the payload's streams, or every watcher
// when the payload cannot be read.
func (f *Feed) deliver(payload string) {
	ids, err := ordersdb.ParseChangePayload(payload)
	if err != nil {
		f.log.Warn("unreadable change notification; waking every waiting read", "error", err)
		f.wakeAll()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		for ch := range f.watchers[id] {
			wake(ch)
		}
	}
}

func (f *Feed) wakeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, set := range f.watchers {
		for ch := range set {
			wake(ch)
		}
	}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wake-up is already pending
	}
}
