package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// stage is one server-side latency histogram that bench-latency reads from
// the services' /metrics before and after the run, so the figures cover the
// measured run only.
type stage struct {
	label, url, metric string
}

// stages are where an event's time goes, each measured from its
// recorded_at in the event store: the relay's share (until Kafka has it)
// and each projector's (until its read model has it).
func stages(commandURL string, projectorMetrics []string) []stage {
	out := []stage{{"relay (to Kafka)", strings.TrimSuffix(commandURL, "/") + "/metrics", "relay_publish_delay_seconds"}}
	names := []string{"projector-orders", "projector-stats", "search-indexer"}
	for i, u := range projectorMetrics {
		label := u
		if i < len(names) {
			label = names[i]
		}
		out = append(out, stage{label + " (applied)", u, "projector_apply_latency_seconds"})
	}
	return out
}

// buckets is a histogram's cumulative count per upper bound.
type buckets map[float64]uint64

// scrape reads each stage's histogram; a service that does not answer
// gets no figure (nil).
func scrape(ctx context.Context, client *http.Client, ss []stage) []buckets {
	out := make([]buckets, len(ss))
	for i, s := range ss {
		b, err := scrapeHistogram(ctx, client, s.url, s.metric)
		if err == nil {
			out[i] = b
		}
	}
	return out
}

func scrapeHistogram(ctx context.Context, client *http.Client, url, metric string) (buckets, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	f, ok := families[metric]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
		return nil, fmt.Errorf("%s: no histogram %s", url, metric)
	}
	b := buckets{}
	for _, m := range f.Metric { // label sets are summed: one per group
		for _, bk := range m.GetHistogram().GetBucket() {
			if !math.IsInf(bk.GetUpperBound(), 1) { // the text format's +Inf bucket is the sample count
				b[bk.GetUpperBound()] += bk.GetCumulativeCount()
			}
		}
		b[math.Inf(1)] += m.GetHistogram().GetSampleCount()
	}
	return b, nil
}

// quantile is the upper bound of the bucket holding quantile q of the
// events counted between before and after.
func quantile(before, after buckets, q float64) (float64, uint64) {
	bounds := make([]float64, 0, len(after))
	for ub := range after {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total == 0 {
		return 0, 0
	}
	for _, ub := range bounds {
		if float64(after[ub]-before[ub]) >= q*float64(total) {
			return ub, total
		}
	}
	return math.Inf(1), total
}

// printBreakdown prints, per stage, the bucket bounds that hold p50, p95
// and p99 of the events of the run.
func printBreakdown(ss []stage, before, after []buckets) {
	fmt.Printf("\nserver side, every event of the run, from its recorded_at (upper bounds of the histogram buckets holding each percentile):\n")
	fmt.Printf("%-30s %8s %8s %8s %8s\n", "stage", "events", "p50 <=", "p95 <=", "p99 <=")
	for i, s := range ss {
		if before[i] == nil || after[i] == nil {
			fmt.Printf("%-30s %8s (no %s at %s)\n", s.label, "-", s.metric, s.url)
			continue
		}
		bound := func(q float64) string {
			ub, _ := quantile(before[i], after[i], q)
			if math.IsInf(ub, 1) {
				return "+Inf"
			}
			return (time.Duration(ub * float64(time.Second))).String()
		}
		_, n := quantile(before[i], after[i], 0.5)
		fmt.Printf("%-30s %8d %8s %8s %8s\n", s.label, n, bound(0.50), bound(0.95), bound(0.99))
	}
}
