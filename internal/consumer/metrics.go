package consumer

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Metrics are a projector's consumer metrics.
type Metrics struct {
	applied, skipped, healed, dlq, retries prometheus.Counter
	applyLatency, batchLatency             prometheus.Histogram
	lag                                    *prometheus.GaugeVec
}

// NewMetrics registers the consumer metrics of group on reg.
func NewMetrics(reg prometheus.Registerer, group string) *Metrics {
	labels := prometheus.Labels{"group": group}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &Metrics{
		applied: counter("projector_events_applied_total", "Events applied to the read model."),
		skipped: counter("projector_duplicates_skipped_total", "Redelivered events skipped because the model already had their version."),
		healed:  counter("projector_gap_events_healed_total", "Events read from the event store to fill a version gap."),
		dlq:     counter("projector_dlq_messages_total", "Messages sent to the dead-letter topic."),
		retries: counter("projector_apply_retries_total", "Batch apply attempts that failed and were retried."),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "projector_apply_latency_seconds",
			Help: "From the event's recorded_at in the store to its effect committed in the read model.", ConstLabels: labels,
			Buckets: []float64{.0025, .005, .01, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}}),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "projector_batch_duration_seconds",
			Help: "Time to apply and commit one batch.", ConstLabels: labels,
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "projector_consumer_lag",
			Help: "Messages in the partition after the group's committed offset."}, []string{"group", "topic", "partition"}),
	}
	reg.MustRegister(m.applied, m.skipped, m.healed, m.dlq, m.retries, m.applyLatency, m.batchLatency, m.lag)
	return m
}

// reportLag computes the group's lag per partition from committed offsets
// and high watermarks, every few seconds. Every replica reports the same
// numbers for the whole group, so dashboards take max by partition.
func (c *Consumer) reportLag(ctx context.Context) {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 5 * time.Second}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.updateLag(ctx, client); err != nil {
				c.log.Debug("consumer lag", "error", err)
			}
		}
	}
}

func (c *Consumer) updateLag(ctx context.Context, client *kafka.Client) error {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return err
	}
	fetch := map[string][]int{}
	list := map[string][]kafka.OffsetRequest{}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			fetch[t.Name] = append(fetch[t.Name], p.ID)
			list[t.Name] = append(list[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.cfg.GroupID, Topics: fetch})
	if err != nil {
		return err
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: list})
	if err != nil {
		return err
	}
	for topic, parts := range ends.Topics {
		done := map[int]int64{}
		for _, p := range committed.Topics[topic] {
			done[p.Partition] = p.CommittedOffset
		}
		for _, p := range parts {
			off := max(done[p.Partition], 0)
			c.m.lag.WithLabelValues(c.cfg.GroupID, topic, strconv.Itoa(p.Partition)).Set(float64(max(p.LastOffset-off, 0)))
		}
	}
	return nil
}
