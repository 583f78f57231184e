// Package relay is the outbox relay: it publishes every committed event to
// Kafka in the store's commit-safe order and records how far it got in
// PostgreSQL. The event table itself is the outbox, so there is no dual
// write: an event that committed is published even if the process dies right
// after the commit.
//
// Delivery is at least once: the checkpoint is saved after Kafka has
// acknowledged a batch, off the publishing path and at most once per
// CheckpointEvery, so a crash republishes what was acknowledged since the
// last saved checkpoint (at most that long's events).
// Among replicas, a PostgreSQL session advisory lock elects one active relay;
// when its connection dies (process killed, network gone) the lock is
// released and another replica takes over within one lock-poll interval.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
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
	// CheckpointEvery is the least time between two checkpoint saves. A
	// crash republishes what was acknowledged since the last save (at most
	// this long's events, which every consumer skips by version); saving
	// after every batch was a write transaction per batch, a hundred a
	// second at 500 commands/s.
	CheckpointEvery time.Duration
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
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = time.Second
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
	delay     prometheus.Histogram
}

// New returns a relay. reg may be nil.
func New(pool *pgxpool.Pool, store Store, pub Publisher, cfg Config, log *slog.Logger, reg prometheus.Registerer) *Relay {
	cfg.defaults()
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_published_events_total", Help: "Events published to Kafka by the outbox relay."}),
		leader:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_leader", Help: "1 while this replica holds the relay lock."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_publish_failures_total", Help: "Failed publish or checkpoint attempts (retried)."}),
		lastPos:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_last_published_position", Help: "Position of the last event published."}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_publish_delay_seconds",
			Help:    "From the event's recorded_at in the store to Kafka's acknowledgement of it: the write side's share of every read model's lag.",
			Buckets: []float64{.0025, .005, .01, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.leader, m.failures, m.lastPos, m.delay)
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
	saver := r.startCheckpointer(ctx)
	defer saver.stop()
	backoff := newBackoff(r.cfg.MaxBackoff)
	for ctx.Err() == nil {
		n, next, err := r.publishBatch(ctx, saver, cursor)
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

func (r *Relay) publishBatch(ctx context.Context, saver *checkpointer, cursor eventstore.Cursor) (int, eventstore.Cursor, error) {
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
	saver.record(next)
	r.metrics.published.Add(float64(len(batch)))
	r.publishedCount.Add(int64(len(batch)))
	r.metrics.lastPos.Set(float64(batch[len(batch)-1].Position))
	for _, e := range batch {
		r.metrics.delay.Observe(time.Since(e.RecordedAt).Seconds())
	}
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

// checkpointer saves the relay's cursor off the publishing path: the relay
// hands it the cursor after each published batch and reads the next batch
// while the latest cursor is written (a PostgreSQL round trip less between
// an event's commit and its publication), at most once per CheckpointEvery.
// A checkpoint that trails costs nothing but some events published again
// after a crash, which every consumer skips by version; it never gets ahead
// of what Kafka has acknowledged.
type checkpointer struct {
	r      *Relay
	mu     sync.Mutex
	latest eventstore.Cursor
	dirty  bool
	poke   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

// startCheckpointer starts saving until stop.
func (r *Relay) startCheckpointer(ctx context.Context) *checkpointer {
	ctx, cancel := context.WithCancel(ctx)
	c := &checkpointer{r: r, poke: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go c.run(ctx)
	return c
}

// record makes cursor the next checkpoint to save.
func (c *checkpointer) record(cursor eventstore.Cursor) {
	c.mu.Lock()
	c.latest, c.dirty = cursor, true
	c.mu.Unlock()
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// stop saves the last recorded cursor and returns once it is written (or
// failed), so a successor leader starts from it.
func (c *checkpointer) stop() {
	c.cancel()
	<-c.done
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-c.poke:
			if err := c.flush(ctx); err != nil && ctx.Err() == nil {
				c.r.metrics.failures.Inc()
				c.r.log.Warn("relay checkpoint not saved, retrying with the next batch", "error", err)
			}
			// The batches published meanwhile leave only their latest
			// cursor, saved after the pause (or by the final flush).
			sleep(ctx, c.r.cfg.CheckpointEvery)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.flush(final); err != nil {
				c.r.log.Warn("last relay checkpoint not saved; the next leader republishes from the one before", "error", err)
			}
			return
		}
	}
}

// flush saves the latest cursor if it has not been saved yet.
func (c *checkpointer) flush(ctx context.Context) error {
	c.mu.Lock()
	cursor, dirty := c.latest, c.dirty
	c.dirty = false
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := c.r.saveCheckpoint(ctx, cursor); err != nil {
		c.mu.Lock()
		if !c.dirty { // nothing newer came meanwhile: this one is still to save
			c.latest, c.dirty = cursor, true
		}
		c.mu.Unlock()
		return err
	}
	return nil
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
