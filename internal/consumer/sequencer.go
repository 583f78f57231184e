package consumer

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/escqrs/platform/pkg/events"
)

// Model is a read model that stores, atomically with each change, the last
// version it applied for every stream.
type Model interface {
	// Versions returns the stored version of each stream (absent: 0).
	Versions(ctx context.Context, streamIDs []uuid.UUID) (map[uuid.UUID]int64, error)
	// Apply makes the effect of evs durable. Per stream, evs are contiguous
	// and start right after the version Versions reported. Apply must still
	// check-and-set the version itself (apply an event only if the stored
	// version is its version - 1): during a rebalance two replicas can
	// briefly hold the same partition.
	Apply(ctx context.Context, evs []events.Envelope) error
}

// Optimist is a Model that can apply a batch without reading its streams'
// versions first. In the common case, where every event continues its
// stream, a batch then takes one round trip to the model instead of two;
// only the events it could not apply go the way of Versions, skipping and
// healing.
type Optimist interface {
	// TryApply applies, in batch order, each event of evs whose stream is
	// stored at the version just before it, and reports which it applied
	// (one flag per event); the others changed nothing. A model may apply
	// all of evs or none.
	TryApply(ctx context.Context, evs []events.Envelope) ([]bool, error)
}

// StreamReader reads events from the event store (read-only access).
type StreamReader interface {
	ReadStream(ctx context.Context, streamID uuid.UUID, afterVersion int64, limit int) ([]events.Envelope, error)
}

// Sequencer turns at-least-once, possibly gappy delivery into exactly-once,
// in-order application: an event at or below the model's version is a
// duplicate and skipped; an event beyond version+1 means some were missed
// (e.g. a message parked in the DLQ, or a model restored from an older
// rebuild), and the missing ones are read from the event store first.
type Sequencer struct {
	model Model
	store StreamReader
	m     *Metrics
}

// NewSequencer returns a BatchHandler over model.
func NewSequencer(model Model, store StreamReader, m *Metrics) *Sequencer {
	return &Sequencer{model: model, store: store, m: m}
}

// HandleBatch implements BatchHandler.
func (s *Sequencer) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	if o, ok := s.model.(Optimist); ok {
		rest, err := s.tryApply(ctx, o, batch)
		if err != nil || len(rest) == 0 {
			return err
		}
		batch = rest
	}
	ids := make([]uuid.UUID, 0, len(batch))
	seen := make(map[uuid.UUID]bool, len(batch))
	for _, e := range batch {
		if !seen[e.StreamID] {
			seen[e.StreamID] = true
			ids = append(ids, e.StreamID)
		}
	}
	versions, err := s.model.Versions(ctx, ids)
	if err != nil {
		return fmt.Errorf("read model versions: %w", err)
	}
	out := make([]events.Envelope, 0, len(batch))
	var skipped, healed int
	for _, e := range batch {
		cur := versions[e.StreamID]
		switch {
		case e.Version <= cur:
			skipped++
			continue
		case e.Version > cur+1:
			missing, err := s.store.ReadStream(ctx, e.StreamID, cur, int(e.Version-1-cur))
			if err != nil {
				return fmt.Errorf("heal gap %s %d..%d: %w", e.StreamID, cur+1, e.Version-1, err)
			}
			for i, m := range missing {
				if m.Version != cur+int64(i)+1 {
					return fmt.Errorf("heal gap %s: store returned version %d, want %d", e.StreamID, m.Version, cur+int64(i)+1)
				}
			}
			if int64(len(missing)) != e.Version-1-cur {
				return fmt.Errorf("heal gap %s: store has %d of %d missing events", e.StreamID, len(missing), e.Version-1-cur)
			}
			out = append(out, missing...)
			healed += len(missing)
		}
		out = append(out, e)
		versions[e.StreamID] = e.Version
	}
	if len(out) > 0 {
		if err := s.model.Apply(ctx, out); err != nil {
			return fmt.Errorf("apply %d events: %w", len(out), err)
		}
	}
	s.m.applied.Add(float64(len(out)))
	s.m.skipped.Add(float64(skipped))
	s.m.healed.Add(float64(healed))
	return nil
}

// tryApply lets the model apply what continues its streams and returns
// the events it did not apply.
func (s *Sequencer) tryApply(ctx context.Context, o Optimist, batch []events.Envelope) ([]events.Envelope, error) {
	done, err := o.TryApply(ctx, batch)
	if err != nil {
		return nil, fmt.Errorf("apply %d events: %w", len(batch), err)
	}
	if len(done) != len(batch) {
		return nil, fmt.Errorf("apply %d events: the model reported on %d", len(batch), len(done))
	}
	var rest []events.Envelope
	for i, e := range batch {
		if !done[i] {
			rest = append(rest, e)
		}
	}
	s.m.applied.Add(float64(len(batch) - len(rest)))
	return rest, nil
}

// Transient forwards the model's own classification of outages, if it has one.
func (s *Sequencer) Transient(err error) bool {
	if tc, ok := s.model.(interface{ Transient(error) bool }); ok {
		return tc.Transient(err)
	}
	return false
}
