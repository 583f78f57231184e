// Package consumer is the small runtime the three projectors share: a
// kafka-go consumer-group reader that hands decoded events to a read model in
// batches, commits offsets only after the model has made them durable,
// retries with backoff, sends poison messages to a dead-letter topic, and
// shuts down by finishing the batch in hand.
//
// Delivery from Kafka is at least once and per-partition ordered; messages
// are keyed by aggregate id, so one aggregate's events arrive in order. The
// Sequencer (sequencer.go) turns that into exactly-once effect: duplicates are
// skipped by version, and gaps are healed from the event store.
package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/internal/platform/neterr"
	"github.com/escqrs/platform/pkg/events"
)

// BatchHandler applies a batch of events, in delivery order, durably. It
// returns an error only for failures worth retrying (the store is down);
// such a batch is retried whole.
type BatchHandler interface {
	HandleBatch(ctx context.Context, batch []events.Envelope) error
}

// Config tunes a Consumer.
type Config struct {
	Brokers []string
	GroupID string
	Topics  []string
	// MaxBatch bounds the events handed to the model at once.
	MaxBatch int
	// Linger is how long a batch waits for more messages once it has one.
	Linger time.Duration
	// MaxWait is how long the broker holds a fetch that finds no message.
	// With MinBytes 1 it answers as soon as one arrives, so MaxWait does
	// not add latency; it only sets how often idle partitions are polled
	// (each on its own connection in kafka-go): 50 ms cost a quarter of
	// the broker's CPU on an idle system, 1 s costs almost nothing.
	MaxWait time.Duration
	// Retries is how often a failing batch is retried before its events are
	// tried one by one and the failing ones sent to the DLQ.
	Retries    int
	MaxBackoff time.Duration
	// StartOffset for a group with no committed offset (kafka.FirstOffset).
	StartOffset int64
	// ShutdownTimeout bounds how long the batch in hand may take to finish
	// after cancellation.
	ShutdownTimeout time.Duration
	// CommitInterval is how often the offsets of applied batches are sent
	// to Kafka (and always when the reader closes or the group rebalances).
	// Committing each batch synchronously would cost a broker round trip
	// per batch on the latency path; a crash re-delivers at most this
	// interval's events, which the models skip by version.
	CommitInterval time.Duration
}

func (c *Config) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 500
	}
	if c.Linger <= 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 200 * time.Millisecond
	}
}

// Consumer reads a consumer group and feeds a BatchHandler.
type Consumer struct {
	cfg     Config
	reader  *kafka.Reader
	dlq     *kafka.Writer
	handler BatchHandler
	log     *slog.Logger
	m       *Metrics
}

// New returns a consumer; Run starts it.
func New(cfg Config, handler BatchHandler, log *slog.Logger, m *Metrics) *Consumer {
	cfg.defaults()
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry(), cfg.GroupID)
	}
	// The DLQ writer has its own transport with a short metadata TTL: the
	// default one caches topic metadata for 6s, so a DLQ topic created
	// moments before would look missing for every retry.
	dlq := kafkabus.NewWriter(cfg.Brokers)
	dlq.Transport = &kafka.Transport{MetadataTTL: time.Second}
	dlq.AllowAutoTopicCreation = true
	c := &Consumer{cfg: cfg, dlq: dlq, handler: handler, log: log, m: m}
	c.reader = c.newReader()
	return c
}

// newReader joins the group afresh. A reader whose fetch failed is replaced
// rather than reused: kafka-go can keep returning the same error (e.g. "not
// leader for partition" on a topic created moments before) from stale
// metadata.
func (c *Consumer) newReader() *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.cfg.Brokers,
		GroupID:        c.cfg.GroupID,
		GroupTopics:    c.cfg.Topics,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        c.cfg.MaxWait,
		ReadBackoffMin: 10 * time.Millisecond,
		ReadBackoffMax: 100 * time.Millisecond,
		StartOffset:    c.cfg.StartOffset,
		// Offsets are handed to the reader only after the effect is
		// durable; it sends them every CommitInterval and on Close.
		CommitInterval:        c.cfg.CommitInterval,
		HeartbeatInterval:     time.Second,
		SessionTimeout:        10 * time.Second,
		RebalanceTimeout:      10 * time.Second,
		JoinGroupBackoff:      500 * time.Millisecond,
		WatchPartitionChanges: true,
	})
}

// Run consumes until ctx ends. On cancellation the batch in hand is finished
// and committed (within the caller's shutdown budget), then the reader leaves
// the group so its partitions move to another replica at once.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	defer func() { c.reader.Close() }()
	// Work continues on a context that outlives ctx by the batch in hand,
	// for at most ShutdownTimeout.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.ShutdownTimeout, stopWork) })
	defer stopAfter()
	go c.reportLag(ctx)
	backoff := 100 * time.Millisecond
	for {
		msgs, err := c.fetchBatch(ctx)
		if len(msgs) > 0 {
			if perr := c.process(work, msgs); perr != nil {
				return perr
			}
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		// Fetch errors (a leader moving, a rebalance, a broker restart) are
		// the bus's to heal: the reader reconnects, and nothing was
		// committed past what was applied, so waiting loses nothing.
		c.log.Warn("fetch failed, rejoining the group", "topics", c.cfg.Topics, "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if err := c.reader.Close(); err != nil {
			c.log.Debug("close reader", "error", err)
		}
		c.reader = c.newReader()
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// fetchBatch blocks for the first message, then takes what arrives within
// Linger, up to MaxBatch.
func (c *Consumer) fetchBatch(ctx context.Context) ([]kafka.Message, error) {
	first, err := c.reader.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafka.Message{first}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.Linger)
	defer cancel()
	for len(msgs) < c.cfg.MaxBatch {
		m, err := c.reader.FetchMessage(lctx)
		if err != nil {
			if ctx.Err() != nil {
				return msgs, ctx.Err()
			}
			return msgs, nil // linger over
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// process applies msgs and commits them. Undecodable messages go straight to
// the DLQ; a batch that keeps failing is retried event by event so one poison
// message cannot stall its partition.
func (c *Consumer) process(ctx context.Context, msgs []kafka.Message) error {
	start := time.Now()
	batch := make([]events.Envelope, 0, len(msgs))
	sources := make([]kafka.Message, 0, len(msgs))
	for _, m := range msgs {
		var e events.Envelope
		if err := json.Unmarshal(m.Value, &e); err != nil {
			if err := c.deadLetter(ctx, m, fmt.Errorf("decode: %w", err)); err != nil {
				return err
			}
			continue
		}
		batch = append(batch, e)
		sources = append(sources, m)
	}
	if len(batch) > 0 {
		if err := c.applyWithRetry(ctx, batch, sources); err != nil {
			return err
		}
	}
	if err := c.reader.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("commit offsets: %w", err)
	}
	c.m.batchLatency.Observe(time.Since(start).Seconds())
	for _, e := range batch {
		c.m.applyLatency.Observe(time.Since(e.RecordedAt).Seconds())
	}
	return nil
}

// applyWithRetry retries a failing batch with backoff. While the failure
// looks like an outage of the model's store (see Transient), it retries
// without end: dead-lettering would turn an outage into data loss, and the
// partition resumes where it stopped when the store returns. Any other error
// is retried Retries times; then the batch is split so that only the
// poisonous event goes to the DLQ.
func (c *Consumer) applyWithRetry(ctx context.Context, batch []events.Envelope, sources []kafka.Message) error {
	backoff := 20 * time.Millisecond
	var err error
	for attempt := 0; ; attempt++ {
		if err = c.handler.HandleBatch(ctx, batch); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= c.cfg.Retries && !c.transient(err) {
			break
		}
		c.m.retries.Inc()
		c.log.Warn("apply failed, retrying", "events", len(batch), "attempt", attempt+1, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
	if len(batch) == 1 {
		return c.deadLetter(ctx, sources[0], err)
	}
	for i := range batch {
		if err := c.applyWithRetry(ctx, batch[i:i+1], sources[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// transient reports whether err means a dependency is unreachable rather
// than that the event cannot be applied. Handlers may refine it by
// implementing Transient(error) bool.
func (c *Consumer) transient(err error) bool {
	if tc, ok := c.handler.(interface{ Transient(error) bool }); ok && tc.Transient(err) {
		return true
	}
	return IsNetworkError(err)
}

// IsNetworkError reports connection-level failures and time-outs, including
// a connection cut in the middle of a reply.
func IsNetworkError(err error) bool { return neterr.Is(err) }

// deadLetter publishes m to <topic>.dlq with the error and group in headers.
// If even the DLQ cannot be written, the consumer stops rather than commit
// past a message it could not park: losing it silently is worse.
func (c *Consumer) deadLetter(ctx context.Context, m kafka.Message, cause error) error {
	c.log.Error("message sent to DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", cause)
	headers := append(append([]kafka.Header(nil), m.Headers...),
		kafka.Header{Key: "dlq_error", Value: []byte(cause.Error())},
		kafka.Header{Key: "dlq_group", Value: []byte(c.cfg.GroupID)},
		kafka.Header{Key: "dlq_source", Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10))},
	)
	dlq := kafkabus.DLQ(m.Topic)
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		err = c.dlq.WriteMessages(ctx, kafka.Message{Topic: dlq, Key: m.Key, Value: m.Value, Headers: headers})
		if err == nil {
			c.m.dlq.Inc()
			return nil
		}
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			_ = kafkabus.EnsureTopics(ctx, c.cfg.Brokers, 1, dlq)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return fmt.Errorf("write to %s: %w", dlq, err)
}
