package kafkabus

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/escqrs/platform/internal/testsupport/testenv"
)

// The Producer puts every message on the partition kafka.Writer's Murmur2
// balancer would choose (consumers and tools rely on the same key always
// landing on the same partition), in the order given, with its headers.
func TestProducerPartitionsAndOrder(t *testing.T) {
	testenv.RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testenv.KafkaBrokers()
	const partitions = 4
	topic := "test-producer-" + uuid.NewString()[:8]
	if err := EnsureTopics(ctx, brokers, partitions, topic); err != nil {
		t.Fatal(err)
	}

	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var msgs []kafka.Message
	for round := range 3 {
		for _, k := range keys {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(k), Value: []byte(k + strconv.Itoa(round)),
				Headers: []kafka.Header{{Key: "round", Value: []byte(strconv.Itoa(round))}}})
		}
	}
	p := NewProducer(brokers)
	// Two calls: the second must append behind the first on each partition.
	if err := p.WriteMessages(ctx, msgs[:len(keys)]...); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessages(ctx, msgs[len(keys):]...); err != nil {
		t.Fatal(err)
	}

	var balancer kafka.Murmur2Balancer
	all := []int{0, 1, 2, 3}
	for part := range partitions {
		var want []string
		for _, m := range msgs {
			if balancer.Balance(m, all...) == part {
				want = append(want, string(m.Value))
			}
		}
		var got []string
		for _, m := range readMessages(ctx, t, brokers[0], topic, part, len(want)) {
			round := string(m.Value[1:])
			if len(m.Headers) != 1 || string(m.Headers[0].Value) != round {
				t.Errorf("message %q has headers %v, want round=%s", m.Value, m.Headers, round)
			}
			got = append(got, string(m.Value))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("partition %d holds %v, want %v", part, got, want)
		}
	}
}

// A topic that does not exist is an error, not a silent drop.
func TestProducerUnknownTopic(t *testing.T) {
	testenv.RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := NewProducer(testenv.KafkaBrokers())
	err := p.WriteMessages(ctx, kafka.Message{Topic: "no-such-topic-" + uuid.NewString()[:8], Key: []byte("k"), Value: []byte("v")})
	if err == nil {
		t.Fatal("write to a missing topic succeeded")
	}
	if err := p.WriteMessages(ctx, kafka.Message{Key: []byte("k")}); err == nil {
		t.Fatal("a message without a topic was accepted")
	}
}

// recordingTransport passes requests to Kafka and records the partitions of
// each produce request. The first produce that holds the partition named by
// refuse does not reach Kafka for that partition: the transport answers for
// it with a retriable error, as a broker whose leadership just moved would.
type recordingTransport struct {
	kafka.RoundTripper
	mu       sync.Mutex
	produces [][]topicPartition // each produce's partitions
	refuse   *topicPartition
}

func (t *recordingTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	produce, ok := req.(*produceapi.Request)
	if !ok {
		return t.RoundTripper.RoundTrip(ctx, addr, req)
	}
	t.mu.Lock()
	var partitions []topicPartition
	var refused *topicPartition
	for i := range produce.Topics {
		topic := &produce.Topics[i]
		topic.Partitions = slices.DeleteFunc(topic.Partitions, func(p produceapi.RequestPartition) bool {
			tp := topicPartition{topic.Topic, int(p.Partition)}
			partitions = append(partitions, tp)
			if t.refuse != nil && tp == *t.refuse {
				refused, t.refuse = t.refuse, nil
				return true
			}
			return false
		})
	}
	t.produces = append(t.produces, partitions)
	t.mu.Unlock()
	res, err := t.RoundTripper.RoundTrip(ctx, addr, produce)
	if err != nil || refused == nil {
		return res, err
	}
	out := res.(*produceapi.Response)
	out.Topics = append(out.Topics, produceapi.ResponseTopic{Topic: refused.topic, Partitions: []produceapi.ResponsePartition{
		{Partition: int32(refused.partition), ErrorCode: int16(kafka.NotLeaderForPartition)}}})
	return out, nil
}

// One call sends one produce request to the single local broker, whatever
// the partitions and topics it touches; a partition Kafka refuses with a
// retriable error is sent again on its own, and every message lands once,
// in order.
func TestProducerOneRequestPerBrokerAndRetryOfTheRefused(t *testing.T) {
	testenv.RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testenv.KafkaBrokers()
	prefix := "test-producer-" + uuid.NewString()[:8]
	topics := []string{prefix + "-a", prefix + "-b"}
	if err := EnsureTopics(ctx, brokers, 4, topics...); err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, kafka.Message{Topic: topics[i%2], Key: []byte("key-" + strconv.Itoa(i%10)), Value: []byte(strconv.Itoa(i))})
	}
	// Partitions created a moment ago may refuse writes for a while: write
	// to each of them first, so that only the transport's refusal is seen.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var primers []kafka.Message
		for _, m := range msgs {
			primers = append(primers, kafka.Message{Topic: m.Topic, Key: m.Key, Value: []byte(primer)})
		}
		err := NewProducer(brokers).WriteMessages(ctx, primers...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new topics refuse writes: %v", err)
		}
	}
	var balancer kafka.Murmur2Balancer
	want := map[topicPartition][]string{} // values in order
	for _, m := range msgs {
		tp := topicPartition{m.Topic, balancer.Balance(m, 0, 1, 2, 3)}
		want[tp] = append(want[tp], string(m.Value))
	}
	refuse := topicPartition{topics[0], 1}
	if len(want[refuse]) == 0 {
		t.Fatalf("no message hashes to %v: pick other keys", refuse)
	}

	p := NewProducer(brokers)
	transport := &recordingTransport{RoundTripper: p.client.Transport, refuse: &refuse}
	p.client.Transport = transport
	if err := p.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	if len(transport.produces) != 2 {
		t.Fatalf("%d produce requests %v, want 2: one for all, one again for the refused partition", len(transport.produces), transport.produces)
	}
	if got := len(transport.produces[0]); got != len(want) {
		t.Errorf("the first request covers %d partitions, want all %d the messages hash to", got, len(want))
	}
	if fmt.Sprint(transport.produces[1]) != fmt.Sprint([]topicPartition{refuse}) {
		t.Errorf("the second request covers %v, want only the refused %v", transport.produces[1], refuse)
	}
	for tp, values := range want {
		var got []string
		for _, m := range readMessages(ctx, t, brokers[0], tp.topic, tp.partition, len(values)) {
			got = append(got, string(m.Value))
		}
		if fmt.Sprint(got) != fmt.Sprint(values) {
			t.Errorf("%v holds %v, want %v", tp, got, values)
		}
	}
}

// primer is the value of the messages that make the partitions ready.
const primer = "primer"

// readMessages reads n messages from the start of one partition, skipping
// primers, and fails if a message more follows within a moment.
func readMessages(ctx context.Context, t *testing.T, broker, topic string, partition, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d after %d messages: %v", topic, partition, len(out), err)
		}
		if string(m.Value) != primer {
			out = append(out, m)
		}
	}
	more, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := r.ReadMessage(more); err == nil {
		t.Errorf("%s/%d holds more than the %d messages written: %q", topic, partition, n, m.Value)
	}
	return out
}
