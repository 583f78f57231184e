package kafkautil_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/kafkautil"
	"github.com/escqrs/platform/internal/testenv"
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
	if err := kafkautil.EnsureTopics(ctx, brokers, partitions, topic); err != nil {
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
	p := kafkautil.NewProducer(brokers)
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
		got := readPartition(ctx, t, brokers[0], topic, part, len(want))
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
	p := kafkautil.NewProducer(testenv.KafkaBrokers())
	err := p.WriteMessages(ctx, kafka.Message{Topic: "no-such-topic-" + uuid.NewString()[:8], Key: []byte("k"), Value: []byte("v")})
	if err == nil {
		t.Fatal("write to a missing topic succeeded")
	}
	if err := p.WriteMessages(ctx, kafka.Message{Key: []byte("k")}); err == nil {
		t.Fatal("a message without a topic was accepted")
	}
}

// readPartition reads n values (and checks each header) from the start of one partition.
func readPartition(ctx context.Context, t *testing.T, broker, topic string, partition, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []string
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d after %d messages: %v", topic, partition, len(out), err)
		}
		round := string(m.Value[1:])
		if len(m.Headers) != 1 || string(m.Headers[0].Value) != round {
			t.Errorf("message %q has headers %v, want round=%s", m.Value, m.Headers, round)
		}
		out = append(out, string(m.Value))
	}
	return out
}
