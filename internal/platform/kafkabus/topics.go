// Package kafkabus is Kafka as the platform's event bus: topic names (one
// per stream type, and each topic's dead-letter topic), topic creation, and
// the producer the outbox relay publishes with.
package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/pkg/events"
)

// Topics are the event topics, one per stream type: every event of an
// aggregate goes to one topic, so order across its event types is kept.
var Topics = []string{events.StreamOrder.Topic(), events.StreamAccount.Topic()}

// PrefixedTopics are Topics under a prefix (KAFKA_TOPIC_PREFIX), which lets
// several independent deployments (or test runs) share one cluster.
func PrefixedTopics(prefix string) []string {
	out := make([]string, len(Topics))
	for i, t := range Topics {
		out[i] = prefix + t
	}
	return out
}

// DLQ is the dead-letter topic of topic.
func DLQ(topic string) string { return topic + ".dlq" }

// EnsureTopics creates topics that do not exist yet with the given partition
// count (replication factor 1 when there is a single broker). Existing topics
// are left alone.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, topics ...string) error {
	var d kafka.Dialer
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dial kafka %s: %w", brokers[0], err)
	}
	defer conn.Close()
	brokerList, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("list brokers: %w", err)
	}
	controller, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return fmt.Errorf("dial controller: %w", err)
	}
	defer cc.Close()
	replication := min(3, len(brokerList))
	configs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		configs[i] = kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replication}
	}
	if err := cc.CreateTopics(configs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	return waitForLeaders(ctx, conn, topics)
}

// waitForLeaders returns once every partition of topics has a leader: a
// client that starts on a topic created moments before otherwise meets
// "not leader for partition" errors.
func waitForLeaders(ctx context.Context, conn *kafka.Conn, topics []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, err := conn.ReadPartitions(topics...)
		ready := err == nil && len(parts) > 0
		for _, p := range parts {
			if p.Leader.Host == "" || p.Leader.ID < 0 {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v have partitions without a leader after 30s (last error: %v)", topics, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NewWriter returns a synchronous, ordered writer: RequireAll acks, messages
// hashed by key with the same murmur2 partitioner Java clients use, and a
// short batch timeout so a lone message is not held back (kafka-go's default
// waits a full second).
func NewWriter(brokers []string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   16 << 20,
		BatchTimeout: 2 * time.Millisecond,
		MaxAttempts:  3,
	}
}
