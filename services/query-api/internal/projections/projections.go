// Package projections reports how far each read model has got behind the
// event store, and exports that lag as the projection_lag_events gauge.
package projections

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// Source reads one projection's checkpoint.
type Source struct {
	Name       string
	Checkpoint func(ctx context.Context) (model.Checkpoint, error)
	// StreamTypes are the streams the projection consumes (none: all). The
	// search index only consumes orders, so account events are not its lag.
	StreamTypes []events.StreamType
}

// HeadReader is the event store as the monitor needs it.
type HeadReader interface {
	HeadPosition(ctx context.Context) (int64, error)
	// CountAfter counts the events past position of the given stream types.
	CountAfter(ctx context.Context, position int64, types []events.StreamType) (int64, error)
}

// Status is one projection's progress. Error is set (and the numbers left
// out) when its model could not be read.
type Status struct {
	Name          string     `json:"name"`
	Position      *int64     `json:"position,omitempty"`
	LagEvents     *int64     `json:"lag_events,omitempty"`
	EventsApplied *int64     `json:"events_applied,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at"`
	Error         string     `json:"error,omitempty"`
}

// Report is every projection's progress against one head position.
type Report struct {
	Projections  []Status `json:"projections"`
	HeadPosition int64    `json:"head_position"`
}

// Monitor computes reports. It is safe for concurrent use.
type Monitor struct {
	head    HeadReader
	sources []Source
	timeout time.Duration
	lag     *prometheus.GaugeVec
	log     *slog.Logger
}

// NewMonitor registers projection_lag_events{projection} on reg.
// perSourceTimeout bounds each model's answer, so one hung engine cannot
// hold the whole report.
func NewMonitor(head HeadReader, sources []Source, perSourceTimeout time.Duration, reg prometheus.Registerer, log *slog.Logger) *Monitor {
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "projection_lag_events",
		Help: "Events in the store, of the stream types a projection consumes, beyond the position it has applied.",
	}, []string{"projection"})
	reg.MustRegister(lag)
	return &Monitor{head: head, sources: sources, timeout: perSourceTimeout, lag: lag, log: log}
}

// Report reads the head, then every checkpoint concurrently. The head is
// read first: a checkpoint read afterwards can only be further along, so a
// lag is never overstated by the gap between the reads. Lag is clamped at
// zero (a checkpoint may be past a head read a moment earlier).
// An unreadable model shows as that projection's error; an unreadable
// event store fails the report, since no lag can be computed without it.
func (m *Monitor) Report(ctx context.Context) (Report, error) {
	head, err := m.head.HeadPosition(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("projection report: %w", err)
	}
	statuses := make([]Status, len(m.sources))
	var wg sync.WaitGroup
	for i, src := range m.sources {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, m.timeout)
			defer cancel()
			cp, err := src.Checkpoint(ctx)
			if err != nil {
				statuses[i] = Status{Name: src.Name, Error: err.Error()}
				return
			}
			// Lag counts the events beyond the checkpoint rather than
			// subtracting positions: positions are not dense (aborted
			// appends leave holes) and a projection may skip stream types.
			lag := int64(0)
			if cp.Position < head {
				if lag, err = m.head.CountAfter(ctx, cp.Position, src.StreamTypes); err != nil {
					statuses[i] = Status{Name: src.Name, Error: err.Error()}
					return
				}
			}
			statuses[i] = Status{Name: src.Name, Position: &cp.Position, LagEvents: &lag,
				EventsApplied: &cp.EventsApplied, UpdatedAt: cp.UpdatedAt}
		})
	}
	wg.Wait()
	for _, s := range statuses {
		if s.LagEvents == nil {
			// No value beats a stale one: dashboards then show the gap.
			m.lag.DeleteLabelValues(s.Name)
			if m.log != nil {
				m.log.Warn("projection checkpoint unreadable", "projection", s.Name, "error", s.Error)
			}
			continue
		}
		m.lag.WithLabelValues(s.Name).Set(float64(*s.LagEvents))
	}
	return Report{Projections: statuses, HeadPosition: head}, nil
}

// Run refreshes the gauge every interval until ctx ends, so the metric
// stays current even when nobody calls GET /v1/projections.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.Report(ctx); err != nil && ctx.Err() == nil && m.log != nil {
			m.log.Warn("projection lag not refreshed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
