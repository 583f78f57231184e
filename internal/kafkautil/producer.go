package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Producer writes the messages of each call with one produce request per
// partition, all sent at once, and returns when Kafka has acknowledged every
// one of them (acks=all). Messages are hashed by key onto partitions as
// kafka.Writer with kafka.Murmur2Balancer does (and Java clients do), and
// keep their order within a partition.
//
// Unlike kafka.Writer it holds nothing back. The Writer gathers each
// partition's messages for BatchTimeout before sending them, a wait added to
// every call even when the caller hands over a whole batch at once, as the
// relay does; and it passes each batch through several goroutines, each a
// scheduling delay on a busy machine.
type Producer struct {
	client   *kafka.Client
	balancer kafka.Murmur2Balancer

	mu         sync.Mutex
	partitions map[string]topicPartitions
}

// topicPartitions is a topic's partitions as the cluster last reported
// them: 0..n-1, the list kafka.Writer hands its balancer.
type topicPartitions struct {
	ids       []int
	fetchedAt time.Time
}

// partitionsTTL bounds how long a partition count is trusted: partitions
// added to a topic are used within it. A failed produce forgets it at once.
const partitionsTTL = time.Minute

// NewProducer returns a Producer for the cluster at brokers.
func NewProducer(brokers []string) *Producer {
	return &Producer{
		client:     &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second},
		partitions: map[string]topicPartitions{},
	}
}

type topicPartition struct {
	topic     string
	partition int
}

// WriteMessages implements the relay's Publisher. Every message must name
// its topic. On error some partitions may have been written: the caller
// retries the whole call (delivery is at least once).
func (p *Producer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	batches := map[topicPartition][]kafka.Message{}
	var order []topicPartition
	partitions := map[string][]int{} // of this call's topics, looked up once each
	for _, m := range msgs {
		if m.Topic == "" {
			return errors.New("produce: message without a topic")
		}
		ids, ok := partitions[m.Topic]
		if !ok {
			var err error
			if ids, err = p.partitionIDs(ctx, m.Topic); err != nil {
				return err
			}
			partitions[m.Topic] = ids
		}
		key := topicPartition{m.Topic, p.balancer.Balance(m, ids...)}
		if _, ok := batches[key]; !ok {
			order = append(order, key)
		}
		batches[key] = append(batches[key], m)
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, key := range order {
		wg.Go(func() {
			if err := p.produce(ctx, key, batches[key]); err != nil {
				errs[i] = fmt.Errorf("produce %d messages to %s/%d: %w", len(batches[key]), key.topic, key.partition, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// The partition count or leadership may have changed: ask again.
		p.mu.Lock()
		clear(p.partitions)
		p.mu.Unlock()
		return err
	}
	return nil
}

// produceAttempts bounds the tries of one partition's request when Kafka
// answers with a retriable error (a leader moving, a partition created a
// moment ago): what kafka.Writer's MaxAttempts did.
const produceAttempts = 4

// produce sends one partition's messages, retrying retriable errors.
func (p *Producer) produce(ctx context.Context, key topicPartition, msgs []kafka.Message) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := p.client.Produce(ctx, &kafka.ProduceRequest{Topic: key.topic, Partition: key.partition,
			RequiredAcks: kafka.RequireAll, Records: records(msgs)})
		if err == nil {
			err = res.Error
		}
		var kerr kafka.Error
		if err == nil || attempt == produceAttempts || !errors.As(err, &kerr) || !kerr.Temporary() {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// partitionIDs returns topic's partitions, from the cluster when not known
// or older than partitionsTTL.
func (p *Producer) partitionIDs(ctx context.Context, topic string) ([]int, error) {
	p.mu.Lock()
	tp, ok := p.partitions[topic]
	p.mu.Unlock()
	if ok && time.Since(tp.fetchedAt) < partitionsTTL {
		return tp.ids, nil
	}
	meta, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		var cause error = kafka.UnknownTopicOrPartition
		if len(meta.Topics) == 1 && meta.Topics[0].Error != nil {
			cause = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, cause)
	}
	ids := make([]int, len(meta.Topics[0].Partitions))
	for i := range ids {
		ids[i] = i
	}
	p.mu.Lock()
	p.partitions[topic] = topicPartitions{ids: ids, fetchedAt: time.Now()}
	p.mu.Unlock()
	return ids, nil
}

// records is msgs as a produce request's record set. Its keys and values
// are readers that a request consumes: each attempt needs a set of its own.
func records(msgs []kafka.Message) kafka.RecordReader {
	recs := make([]kafka.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = kafka.Record{Time: m.Time, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}
	}
	return kafka.NewRecordReader(recs...)
}
