// Package relay is the outbox relay: it publishes every committed event to
// Kafka in the store's commit-safe order and records how far it got in
// PostgreSQL. The event table itself is the outbox, so there is no dual
// write: an event that committed is published even if the process dies right
// after the commit.
//
// Delivery is at least once: a crash between publishing a batch and saving
// the checkpoint republishes that batch. Among replicas, a PostgreSQL
// session advisory lock elects one active relay; when its connection dies
// (process killed, network gone) the lock is released and another replica
// takes over within one lock-poll interval.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// Channel is the LISTEN/NOTIFY channel the command API pokes after appends.
const Channel = "events_appended"

// lockKey is the advisory lock key of the relay leader ("relay" in ASCII).
const lockKey int64 = 0x72656c6179

// Store is what the relay reads.
type Store interface {
	ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error)
}

// Publisher writes messages to Kafka; kafka.Writer implements it.
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Config tunes the relay.
type Config struct {
	Name         string        // checkpoint name; one per independent relay pipeline
	BatchSize    int           // events per read and publish
	PollInterval time.Duration // fallback when no notification arrives
	LockRetry    time.Duration // how often a standby tries to become leader
	MaxBackoff   time.Duration // cap on retry backoff when Kafka or Postgres fails
	// Topic maps a stream type to its topic; default events.StreamType.Topic.
	// Tests use it to publish to topics of their own.
	Topic func(events.StreamType) string
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "kafka-relay"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.LockRetry <= 0 {
		c.LockRetry = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Topic == nil {
		c.Topic = events.StreamType.Topic
	}
}

// Relay publishes the event store to Kafka.
type Relay struct {
	pool    *pgxpool.Pool
	store   Store
	pub     Publisher
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// publishedCount mirrors the published counter for Published.
	publishedCount atomic.Int64
	leading        atomic.Bool
	wake           chan struct{} // Wake's, buffered: a wake-up during a batch is not lost
}

// Wake makes the relay read the store now if it leads, and reports whether
// it does. The command API's appends wake the relay of their own process
// this way, without a NOTIFY (a PostgreSQL transaction each); a relay that
// leads in another process must be notified (see Notifier).
func (r *Relay) Wake() bool {
	if !r.leading.Load() {
		return false
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// Published is how many events this relay has published since it started.
func (r *Relay) Published() int64 { return r.publishedCount.Load() }

type metrics struct {
	published prometheus.Counter
	leader    prometheus.Gauge
	failures  prometheus.Counter
	lastPos   prometheus.Gauge
}

// New returns a relay. reg may be nil.
func New(pool *pgxpool.Pool, store Store, pub Publisher, cfg Config, log *slog.Logger, reg prometheus.Registerer) *Relay {
	cfg.defaults()
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_published_events_total", Help: "Events published to Kafka by the outbox relay."}),
		leader:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_leader", Help: "1 while this replica holds the relay lock."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_publish_failures_total", Help: "Failed publish or checkpoint attempts (retried)."}),
		lastPos:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_last_published_position", Help: "Position of the last event published."}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.leader, m.failures, m.lastPos)
	}
	return &Relay{pool: pool, store: store, pub: pub, cfg: cfg, log: log, metrics: m, wake: make(chan struct{}, 1)}
}

// Run competes for leadership and, while leader, publishes until ctx ends.
// It returns nil on cancellation; the batch in hand is finished or abandoned
// unacknowledged (to be republished), never half-recorded.
func (r *Relay) Run(ctx context.Context) error {
	backoff := newBackoff(r.cfg.MaxBackoff)
	for {
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("relay leadership lost or not acquired", "error", err)
			if !sleep(ctx, backoff.next()) {
				return nil
			}
			continue
		}
		backoff.reset()
	}
}

// lead holds one dedicated connection for the advisory lock and LISTEN, and
// publishes while the connection lives.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire relay connection: %w", err)
	}
	// The session lock belongs to this connection: never hand it back to the pool.
	pg := conn.Hijack()
	defer pg.Close(context.Background())
	for {
		var got bool
		if err := pg.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&got); err != nil {
			return fmt.Errorf("try relay lock: %w", err)
		}
		if got {
			break
		}
		if !sleep(ctx, r.cfg.LockRetry) {
			return nil
		}
	}
	r.metrics.leader.Set(1)
	r.leading.Store(true)
	defer func() {
		r.leading.Store(false)
		r.metrics.leader.Set(0)
	}()
	r.log.Info("relay is leader")
	if _, err := pg.Exec(ctx, `LISTEN `+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	cursor, err := r.loadCheckpoint(ctx)
	if err != nil {
		return err
	}
	backoff := newBackoff(r.cfg.MaxBackoff)
	for ctx.Err() == nil {
		n, next, err := r.publishBatch(ctx, cursor)
		if err != nil {
			r.metrics.failures.Inc()
			r.log.Warn("relay publish failed, retrying", "error", err, "cursor", cursor)
			if !sleep(ctx, backoff.next()) {
				return nil
			}
			// The lock connection must still be ours before we go on.
			if err := pg.Ping(ctx); err != nil {
				return fmt.Errorf("relay lock connection: %w", err)
			}
			continue
		}
		backoff.reset()
		cursor = next
		if n == r.cfg.BatchSize {
			continue // more is waiting
		}
		if err := r.wait(ctx, pg); err != nil {
			return err
		}
	}
	return nil
}

// wait blocks until a notification, a Wake, the poll interval, or
// cancellation. Any other error means the lock connection is gone.
func (r *Relay) wait(ctx context.Context, pg *pgx.Conn) error {
	select {
	case <-r.wake:
		return nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
	defer cancel()
	go func() { // a Wake interrupts the wait as the poll interval's end does
		select {
		case <-r.wake:
			cancel()
		case <-wctx.Done():
		}
	}()
	_, err := pg.WaitForNotification(wctx)
	if err == nil || wctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("wait for notification: %w", err)
}

func (r *Relay) publishBatch(ctx context.Context, cursor eventstore.Cursor) (int, eventstore.Cursor, error) {
	batch, next, err := r.store.ReadAll(ctx, cursor, r.cfg.BatchSize)
	if err != nil || len(batch) == 0 {
		return 0, cursor, err
	}
	msgs := make([]kafka.Message, len(batch))
	for i, e := range batch {
		if msgs[i], err = Message(e, r.cfg.Topic(e.StreamType)); err != nil {
			return 0, cursor, err
		}
	}
	if err := r.pub.WriteMessages(ctx, msgs...); err != nil {
		return 0, cursor, fmt.Errorf("publish %d events: %w", len(msgs), err)
	}
	if err := r.saveCheckpoint(ctx, next); err != nil {
		return 0, cursor, err
	}
	r.metrics.published.Add(float64(len(batch)))
	r.publishedCount.Add(int64(len(batch)))
	r.metrics.lastPos.Set(float64(batch[len(batch)-1].Position))
	return len(batch), next, nil
}

// Message is the Kafka form of an event: key = stream id (so one aggregate's
// events share a partition and keep their order), value = envelope JSON.
func Message(e events.Envelope, topic string) (kafka.Message, error) {
	value, err := json.Marshal(e)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode event %d: %w", e.Position, err)
	}
	headers := []kafka.Header{
		{Key: "type", Value: []byte(e.Type)},
		{Key: "schema_version", Value: []byte(strconv.Itoa(e.SchemaVersion))},
		{Key: "stream_type", Value: []byte(e.StreamType)},
		{Key: "event_id", Value: []byte(e.EventID.String())},
	}
	if e.Metadata.Traceparent != "" {
		headers = append(headers, kafka.Header{Key: "traceparent", Value: []byte(e.Metadata.Traceparent)})
	}
	return kafka.Message{Topic: topic, Key: []byte(e.StreamID.String()), Value: value, Headers: headers, Time: e.RecordedAt}, nil
}

func (r *Relay) loadCheckpoint(ctx context.Context) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	err := r.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, position FROM checkpoints WHERE name = $1`, r.cfg.Name).
		Scan(&c.TransactionID, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Cursor{}, nil
	}
	if err != nil {
		return c, fmt.Errorf("load relay checkpoint: %w", err)
	}
	return c, nil
}

// saveCheckpoint records how far the relay has published. Its commit does
// not wait for the WAL flush (synchronous_commit off, for this statement's
// transaction only): a checkpoint lost in a crash of the database only makes
// the relay publish a few events again, which every consumer skips by
// version, while waiting for the flush would put a disk sync on the path of
// every batch.
func (r *Relay) saveCheckpoint(ctx context.Context, c eventstore.Cursor) error {
	_, err := r.pool.Exec(ctx, `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
		INSERT INTO checkpoints (name, transaction_id, position) SELECT $1, $2::text::xid8, $3 FROM async
		ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()`,
		r.cfg.Name, strconv.FormatUint(c.TransactionID, 10), c.Position)
	if err != nil {
		return fmt.Errorf("save relay checkpoint: %w", err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type backoff struct {
	cur, max time.Duration
}

func newBackoff(max time.Duration) *backoff { return &backoff{max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = 50 * time.Millisecond
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }
