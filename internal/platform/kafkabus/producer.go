package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"
)

// Producer writes the messages of each call with one produce request per
// broker, covering every partition the call touches that the broker leads
// (on a single broker, one request in all), and returns when Kafka has
// acknowledged every message (acks=all). Messages are hashed by key onto
// partitions as kafka.Writer with kafka.Murmur2Balancer does (and Java
// clients do), and keep their order within a partition.
//
// Unlike kafka.Writer it holds nothing back. The Writer gathers each
// partition's messages for BatchTimeout before sending them, a wait added to
// every call even when the caller hands over a whole batch at once, as the
// relay does; and it sends a request per partition. Each request is work
// for the broker and a scheduling delay on a busy machine: with one per
// broker instead of one per partition, the relay's p50 at 500 events/s fell
// from 17-34 ms to 15-21 ms (README, "Measured").
type Producer struct {
	client   *kafka.Client
	balancer kafka.Murmur2Balancer

	mu         sync.Mutex
	partitions map[string]topicPartitions
}

// topicPartitions is a topic's partitions as the cluster last reported
// them: their ids 0..n-1 (the list kafka.Writer hands its balancer) and
// the broker id of each one's leader.
type topicPartitions struct {
	ids       []int
	leaders   []int
	fetchedAt time.Time
}

// partitionsTTL bounds how long a partition count is trusted: partitions
// added to a topic are used within it. A failed produce forgets it at once.
const partitionsTTL = time.Minute

// NewProducer returns a Producer for the cluster at brokers.
func NewProducer(brokers []string) *Producer {
	return &Producer{
		// A transport of its own: kafka-go's transports answer metadata
		// requests from a cache they refresh every MetadataTTL (6s by
		// default, shared by every default client in the process), so a
		// topic created a moment ago would look missing for that long.
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second,
			Transport: &kafka.Transport{MetadataTTL: time.Second}},
		partitions: map[string]topicPartitions{},
	}
}

// partitionBatch is one partition's messages of a call, in order.
type partitionBatch struct {
	topic     string
	partition int
	msgs      []kafka.Message
}

// WriteMessages implements the relay's Publisher. Every message must name
// its topic. On error some partitions may have been written: the caller
// retries the whole call (delivery is at least once).
func (p *Producer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	var batches []partitionBatch      // to send; nil until partitioned
	backoff := 100 * time.Millisecond // the waits add up to more than the MetadataTTL
	for attempt := 1; ; attempt++ {
		var retriable bool
		var err error
		if batches == nil {
			batches, err = p.partition(ctx, msgs)
			retriable = Temporary(err)
		}
		if err == nil {
			if batches, retriable, err = p.produce(ctx, batches); err == nil {
				return nil
			}
		}
		// The partition count or leadership may have changed: ask again.
		p.mu.Lock()
		clear(p.partitions)
		p.mu.Unlock()
		if attempt == produceAttempts || !retriable {
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

// partition groups msgs by the partition their key hashes to, partitions
// in the order of their first message.
func (p *Producer) partition(ctx context.Context, msgs []kafka.Message) ([]partitionBatch, error) {
	var batches []partitionBatch
	index := map[topicPartition]int{}
	ids := map[string][]int{} // of this call's topics, looked up once each
	for _, m := range msgs {
		if m.Topic == "" {
			return nil, errors.New("produce: message without a topic")
		}
		topicIDs, ok := ids[m.Topic]
		if !ok {
			tp, err := p.topicPartitions(ctx, m.Topic)
			if err != nil {
				return nil, err
			}
			topicIDs = tp.ids
			ids[m.Topic] = topicIDs
		}
		key := topicPartition{m.Topic, p.balancer.Balance(m, topicIDs...)}
		i, ok := index[key]
		if !ok {
			i = len(batches)
			index[key] = i
			batches = append(batches, partitionBatch{topic: key.topic, partition: key.partition})
		}
		batches[i].msgs = append(batches[i].msgs, m)
	}
	return batches, nil
}

type topicPartition struct {
	topic     string
	partition int
}

// produceAttempts bounds the tries of a call (its metadata lookups, then a
// partition's messages) when Kafka answers with a retriable error: what
// kafka.Writer's MaxAttempts did.
const produceAttempts = 5

// produce sends batches with one request per leader, all at once. It
// returns the batches that failed, whether every failure is worth another
// try, and the failures joined.
func (p *Producer) produce(ctx context.Context, batches []partitionBatch) ([]partitionBatch, bool, error) {
	byLeader := map[int][]partitionBatch{}
	var leaders []int
	for _, b := range batches {
		tp, err := p.topicPartitions(ctx, b.topic)
		if err != nil {
			return batches, Temporary(err), err
		}
		leader := -1 // not known: the request finds out
		if b.partition < len(tp.leaders) {
			leader = tp.leaders[b.partition]
		}
		if _, ok := byLeader[leader]; !ok {
			leaders = append(leaders, leader)
		}
		byLeader[leader] = append(byLeader[leader], b)
	}
	var (
		mu        sync.Mutex
		failed    []partitionBatch
		errs      []error
		retriable = true
	)
	var wg sync.WaitGroup
	for _, leader := range leaders {
		wg.Go(func() {
			f, again, err := p.produceTo(ctx, byLeader[leader])
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, f...)
			errs = append(errs, err)
			retriable = retriable && again
		})
	}
	wg.Wait()
	return failed, retriable, errors.Join(errs...)
}

// produceTo sends batches, which share a leader, in one request. On error
// it returns the batches that were not written and whether Kafka refused
// each of them with an error worth another try.
func (p *Producer) produceTo(ctx context.Context, batches []partitionBatch) ([]partitionBatch, bool, error) {
	req := &produceapi.Request{Acks: int16(kafka.RequireAll), Timeout: int32(p.client.Timeout.Milliseconds())}
	topicIndex := map[string]int{}
	for _, b := range batches {
		i, ok := topicIndex[b.topic]
		if !ok {
			i = len(req.Topics)
			topicIndex[b.topic] = i
			req.Topics = append(req.Topics, produceapi.RequestTopic{Topic: b.topic})
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, produceapi.RequestPartition{
			Partition: int32(b.partition), RecordSet: protocol.RecordSet{Records: records(b.msgs)}})
	}
	ctx, cancel := context.WithTimeout(ctx, p.client.Timeout)
	defer cancel()
	m, err := p.client.Transport.RoundTrip(ctx, p.client.Addr, req)
	if err != nil {
		return batches, Temporary(err), fmt.Errorf("produce to %d partitions: %w", len(batches), err)
	}
	res, ok := m.(*produceapi.Response)
	if !ok {
		return batches, false, fmt.Errorf("produce: unexpected response %T", m)
	}
	refused := map[topicPartition]kafka.Error{}
	for _, t := range res.Topics {
		for _, pr := range t.Partitions {
			if pr.ErrorCode != 0 {
				refused[topicPartition{t.Topic, int(pr.Partition)}] = kafka.Error(pr.ErrorCode)
			}
		}
	}
	var (
		failed    []partitionBatch
		errs      []error
		retriable = true
	)
	for _, b := range batches {
		if kerr, ok := refused[topicPartition{b.topic, b.partition}]; ok {
			failed = append(failed, b)
			errs = append(errs, fmt.Errorf("produce %d messages to %s/%d: %w", len(b.msgs), b.topic, b.partition, kerr))
			retriable = retriable && kerr.Temporary()
		}
	}
	return failed, retriable, errors.Join(errs...)
}

// topicPartitions returns topic's partitions, from the cluster when not
// known or older than partitionsTTL.
func (p *Producer) topicPartitions(ctx context.Context, topic string) (topicPartitions, error) {
	p.mu.Lock()
	tp, ok := p.partitions[topic]
	p.mu.Unlock()
	if ok && time.Since(tp.fetchedAt) < partitionsTTL {
		return tp, nil
	}
	meta, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return tp, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		var cause error = kafka.UnknownTopicOrPartition
		if len(meta.Topics) == 1 && meta.Topics[0].Error != nil {
			cause = meta.Topics[0].Error
		}
		return tp, fmt.Errorf("metadata of topic %s: %w", topic, cause)
	}
	n := len(meta.Topics[0].Partitions)
	tp = topicPartitions{ids: make([]int, n), leaders: make([]int, n), fetchedAt: time.Now()}
	for i := range n {
		tp.ids[i], tp.leaders[i] = i, -1
	}
	for _, part := range meta.Topics[0].Partitions {
		if part.ID >= 0 && part.ID < len(tp.leaders) {
			tp.leaders[part.ID] = part.Leader.ID
		}
	}
	p.mu.Lock()
	p.partitions[topic] = tp
	p.mu.Unlock()
	return tp, nil
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
