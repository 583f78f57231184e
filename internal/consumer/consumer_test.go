package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

// recorder is a BatchHandler that applies a batch atomically (all or
// nothing) and refuses, permanently, any batch holding an event of the
// poison stream.
type recorder struct {
	poison uuid.UUID
	mu     sync.Mutex
	seen   map[uuid.UUID][]int64 // versions applied, per stream, in order
	total  int
}

var errPoison = errors.New("this event can never be applied")

func (r *recorder) HandleBatch(_ context.Context, batch []events.Envelope) error {
	for _, e := range batch {
		if e.StreamID == r.poison {
			return errPoison
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range batch {
		r.seen[e.StreamID] = append(r.seen[e.StreamID], e.Version)
		r.total++
	}
	return nil
}

func (r *recorder) applied() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func deposit(t *testing.T, topic string, stream uuid.UUID, version int64) kafka.Message {
	t.Helper()
	e := events.Envelope{EventID: uuid.New(), StreamType: events.StreamAccount, StreamID: stream, Version: version,
		Position: version, Type: events.TypeFundsDeposited, SchemaVersion: 1, OccurredAt: time.Now().UTC(),
		RecordedAt: time.Now().UTC(), Data: events.FundsDeposited{AmountCents: 100, Source: "test"}}
	value, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topic, Key: []byte(stream.String()), Value: value}
}

// TestConsumerRuntime runs the consumer on a fresh topic of three
// partitions: 10 streams of 30 events each, interleaved, plus a message
// that is not an envelope and an event the handler always refuses, both
// in the middle. Every other event is applied exactly once, in order per
// stream; the two bad messages land in <topic>.dlq with the error and the
// group in their headers; and after a shutdown a consumer of the same
// group resumes after the committed offsets: it gets the next message and
// nothing again.
func TestConsumerRuntime(t *testing.T) {
	testenv.RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.KafkaBrokers()
	topic := "test-" + uuid.NewString()[:8] + "-account-events"
	dlq := kafkabus.DLQ(topic)
	if err := kafkabus.EnsureTopics(ctx, brokers, 3, topic); err != nil {
		t.Fatal(err)
	}
	if err := kafkabus.EnsureTopics(ctx, brokers, 1, dlq); err != nil {
		t.Fatal(err)
	}

	streams := make([]uuid.UUID, 10)
	for i := range streams {
		streams[i] = uuid.New()
	}
	poison := uuid.New()
	var msgs []kafka.Message
	for v := int64(1); v <= 30; v++ {
		for _, s := range streams {
			msgs = append(msgs, deposit(t, topic, s, v))
		}
		if v == 15 {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(streams[0].String()), Value: []byte("{not an envelope")},
				deposit(t, topic, poison, 1))
		}
	}
	w := kafkabus.NewWriter(brokers)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	group := "test-group-" + uuid.NewString()[:8]
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := consumer.Config{Brokers: brokers, GroupID: group, Topics: []string{topic}, MaxBatch: 50, Retries: 1,
		MaxBackoff: 50 * time.Millisecond, CommitInterval: 100 * time.Millisecond}
	run := func(h *recorder) (reg *prometheus.Registry, stop func()) {
		reg = prometheus.NewRegistry()
		c := consumer.New(cfg, h, log, consumer.NewMetrics(reg, group))
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		return reg, func() {
			rcancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	waitFor := func(h *recorder, n int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); h.applied() < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("applied %d events, want %d", h.applied(), n)
			}
		}
	}

	first := &recorder{poison: poison, seen: map[uuid.UUID][]int64{}}
	reg, stop := run(first)
	waitFor(first, 300)
	stop() // commits what was applied
	want := make([]int64, 30)
	for i := range want {
		want[i] = int64(i + 1)
	}
	for _, s := range streams {
		if got := first.seen[s]; !slices.Equal(got, want) {
			t.Errorf("stream %s: versions applied %v, want 1..30 once each, in order", s, got)
		}
	}
	if got := counterValue(t, reg, "projector_dlq_messages_total"); got != 2 {
		t.Errorf("projector_dlq_messages_total = %v, want 2", got)
	}

	// The DLQ holds both bad messages, with the error and the group.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: dlq, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var parked []string
	for len(parked) < 2 {
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		m, err := r.ReadMessage(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("read %s after %d messages: %v", dlq, len(parked), err)
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers["dlq_group"] != group || headers["dlq_error"] == "" || headers["dlq_source"] == "" {
			t.Errorf("DLQ message %q has headers %v, want dlq_group %s, dlq_error and dlq_source", m.Value, headers, group)
		}
		parked = append(parked, headers["dlq_error"])
	}
	if !slices.ContainsFunc(parked, func(e string) bool { return e == errPoison.Error() }) {
		t.Errorf("DLQ errors %q: none is the handler's %q", parked, errPoison)
	}

	// Same group again: nothing is delivered twice, and new messages flow.
	second := &recorder{poison: poison, seen: map[uuid.UUID][]int64{}}
	_, stop = run(second)
	defer stop()
	next := deposit(t, topic, streams[3], 31)
	if err := w.WriteMessages(ctx, next); err != nil {
		t.Fatal(err)
	}
	waitFor(second, 1)
	time.Sleep(500 * time.Millisecond) // anything re-delivered would arrive with it
	if got := second.seen[streams[3]]; second.applied() != 1 || !slices.Equal(got, []int64{31}) {
		t.Errorf("after the restart the group got %d events (%v for the stream written to), want only version 31", second.applied(), second.seen)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
