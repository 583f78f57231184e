package projections

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

type head int64

func (h head) HeadPosition(context.Context) (int64, error) {
	if h < 0 {
		return 0, errors.New("store down")
	}
	return int64(h), nil
}

// CountAfter treats positions as dense, which is what this unit test needs.
func (h head) CountAfter(_ context.Context, position int64, _ []events.StreamType) (int64, error) {
	return max(int64(h)-position, 0), nil
}

func at(n int64) func(context.Context) (model.Checkpoint, error) {
	return func(context.Context) (model.Checkpoint, error) {
		t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		return model.Checkpoint{Position: n, EventsApplied: n * 2, UpdatedAt: &t}, nil
	}
}

func TestReport(t *testing.T) {
	reg := prometheus.NewRegistry()
	var hang = func(ctx context.Context) (model.Checkpoint, error) {
		<-ctx.Done()
		return model.Checkpoint{}, ctx.Err()
	}
	m := NewMonitor(head(10), []Source{
		{Name: "behind", Checkpoint: at(4)},
		{Name: "ahead", Checkpoint: at(12)},
		{Name: "broken", Checkpoint: func(context.Context) (model.Checkpoint, error) { return model.Checkpoint{}, errors.New("boom") }},
		{Name: "hung", Checkpoint: hang},
	}, 50*time.Millisecond, reg, nil)
	rep, err := m.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	want := `{"projections":[` +
		`{"name":"behind","position":4,"lag_events":6,"events_applied":8,"updated_at":"2026-01-01T00:00:00Z"},` +
		`{"name":"ahead","position":12,"lag_events":0,"events_applied":24,"updated_at":"2026-01-01T00:00:00Z"},` +
		`{"name":"broken","updated_at":null,"error":"boom"},` +
		`{"name":"hung","updated_at":null,"error":"context deadline exceeded"}],"head_position":10}`
	if string(b) != want {
		t.Fatalf("report\n got %s\nwant %s", b, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			gauges[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	// No series for unreadable projections: no value beats a stale one.
	if len(gauges) != 2 || gauges["behind"] != 6 || gauges["ahead"] != 0 {
		t.Fatalf("projection_lag_events %v, want behind=6 ahead=0 only", gauges)
	}
	if _, err := NewMonitor(head(-1), nil, time.Second, prometheus.NewRegistry(), nil).Report(context.Background()); err == nil {
		t.Fatal("report without a head succeeded")
	}
}
