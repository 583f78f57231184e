package ordersmodel_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// message is the Kafka form the outbox relay publishes: key = stream id,
// value = the envelope's JSON, type headers.
func message(t testing.TB, topic string, e events.Envelope) kafka.Message {
	t.Helper()
	value, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topic, Key: []byte(e.StreamID.String()), Value: value, Headers: []kafka.Header{
		{Key: "type", Value: []byte(e.Type)}, {Key: "event_id", Value: []byte(e.EventID.String())},
	}}
}

// TestKafkaRoundTrip runs the real consumer runtime (consumer group,
// Sequencer, this model) on fresh topics: every stored event is published,
// some twice; a poison message sits between two events of an order. The
// poison lands in <topic>.dlq with its error and group, and everything
// after it is still applied: the tables equal the fold of the store.
func TestKafkaRoundTrip(t *testing.T) {
	testenv.RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, pool := newDB(t)
	store := eventstore.New(pool)
	h := appendHistory(t, pool, store, 5, 8, 6)

	brokers := testenv.KafkaBrokers()
	prefix := "test-" + uuid.NewString()[:8]
	topics := map[events.StreamType]string{events.StreamOrder: prefix + "-order-events", events.StreamAccount: prefix + "-account-events"}
	orderDLQ := kafkabus.DLQ(topics[events.StreamOrder])
	if err := kafkabus.EnsureTopics(ctx, brokers, 3, topics[events.StreamOrder], topics[events.StreamAccount]); err != nil {
		t.Fatal(err)
	}
	if err := kafkabus.EnsureTopics(ctx, brokers, 1, orderDLQ); err != nil {
		t.Fatal(err)
	}
	waitTopicsVisible(t, ctx, brokers, orderDLQ)

	// The poison: an envelope of a type no code knows, keyed by a real
	// order, published between its versions 1 and 2.
	victim := h.streams[len(h.streams)-1]
	if h.kinds[victim] != events.StreamOrder || len(h.byID[victim]) < 2 {
		t.Fatalf("last stream is a %s of %d events, want an order of 2 or more", h.kinds[victim], len(h.byID[victim]))
	}
	var poison map[string]any
	if err := json.Unmarshal(message(t, "", h.byID[victim][0]).Value, &poison); err != nil {
		t.Fatal(err)
	}
	poison["type"], poison["version"], poison["event_id"] = "OrderTeleported", 2, uuid.NewString()
	poisonValue, err := json.Marshal(poison)
	if err != nil {
		t.Fatal(err)
	}

	var msgs []kafka.Message
	for i, e := range h.all() {
		msgs = append(msgs, message(t, topics[e.StreamType], e))
		if i%7 == 0 { // at-least-once delivery: some events arrive twice
			msgs = append(msgs, message(t, topics[e.StreamType], e))
		}
		if e.StreamID == victim && e.Version == 1 {
			msgs = append(msgs, kafka.Message{Topic: topics[events.StreamOrder], Key: []byte(victim.String()), Value: poisonValue})
		}
	}
	w := kafkabus.NewWriter(brokers)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	group := prefix + "-projector-orders"
	metrics := consumer.NewMetrics(prometheus.NewRegistry(), group)
	c := consumer.New(consumer.Config{Brokers: brokers, GroupID: group, Topics: []string{topics[events.StreamOrder], topics[events.StreamAccount]}, MaxBatch: 50},
		consumer.NewSequencer(ordersmodel.New(pool), store, metrics), slog.New(slog.NewTextHandler(io.Discard, nil)), metrics)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		cp, ok, err := ordersmodel.ReadCheckpoint(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if ok && cp.EventsApplied >= int64(h.total) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s the model applied %+v of %d events", cp, h.total)
		}
		select {
		case err := <-done:
			t.Fatalf("consumer stopped early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	assertRows(t, dump(t, pool), foldReference(t, h))
	if cp := checkpoint(t, pool); cp.EventsApplied != int64(h.total) {
		t.Fatalf("checkpoint = %+v, want exactly %d events applied", cp, h.total)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: orderDLQ, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	got, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("read %s: %v", orderDLQ, err)
	}
	headers := map[string]string{}
	for _, hd := range got.Headers {
		headers[hd.Key] = string(hd.Value)
	}
	if string(got.Key) != victim.String() || string(got.Value) != string(poisonValue) {
		t.Fatalf("DLQ message key=%s value=%s, want the poison keyed %s", got.Key, got.Value, victim)
	}
	if !strings.Contains(headers["dlq_error"], "unknown event type") || headers["dlq_group"] != group {
		t.Fatalf("DLQ headers = %v, want dlq_error about the unknown type and dlq_group %s", headers, group)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consumer stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop within 30s of cancellation")
	}
}

// waitTopicsVisible waits until kafka-go's shared DefaultTransport, which
// the consumer's DLQ writer uses, lists topics. That transport answers
// metadata from a cache refreshed every 6s, so a topic created just before
// can stay invisible to writers longer than deadLetter retries (about 3s).
func waitTopicsVisible(t testing.TB, ctx context.Context, brokers []string, topics ...string) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err == nil {
			visible := 0
			for _, tp := range meta.Topics {
				if tp.Error == nil && len(tp.Partitions) > 0 {
					visible++
				}
			}
			if visible == len(topics) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics %v not visible to kafka-go's transport after 20s (last error %v)", topics, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
