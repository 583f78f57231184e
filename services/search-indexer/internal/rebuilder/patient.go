package rebuilder

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/escqrs/platform/internal/eventstore"
	"github.com/escqrs/platform/pkg/events"
)

// PatientStore makes an empty read mean "the store is exhausted", which
// the rebuild driver (rebuild.Run, rebuild.Replay) takes it to mean.
//
// ReadAll returns only events below the oldest transaction still in flight
// anywhere in the Postgres cluster, so that it never skips a late commit.
// A write transaction left open elsewhere (another service's, a migration,
// a test) therefore makes ReadAll return nothing although committed events
// wait behind it; a fill that stopped there would swap in an index missing
// them. So on an empty read it counts the committed events and, if the
// reads so far returned fewer, waits and reads again. The count is taken
// before the confirming read, so every event it counts was committed
// before that read: when the read comes back empty with nothing missing,
// the store really was exhausted at that moment.
type PatientStore struct {
	Store
	log  *slog.Logger
	poll time.Duration
	// seen counts the events returned since the beginning of the store
	// (a read from the zero cursor starts over).
	seen int64
}

// NewPatientStore wraps store for one run of the rebuild driver.
func NewPatientStore(store Store, log *slog.Logger) *PatientStore {
	return &PatientStore{Store: store, log: log, poll: 100 * time.Millisecond}
}

// ReadAll is the store's ReadAll, except that it returns an empty batch
// only when every event committed before the call has been returned.
func (s *PatientStore) ReadAll(ctx context.Context, after eventstore.Cursor, limit int) ([]events.Envelope, eventstore.Cursor, error) {
	if after == (eventstore.Cursor{}) {
		s.seen = 0
	}
	var (
		confirmed    bool
		waitingSince = time.Now()
		lastLog      = time.Now()
	)
	for {
		batch, next, err := s.Store.ReadAll(ctx, after, limit)
		if err != nil || len(batch) > 0 || confirmed {
			s.seen += int64(len(batch))
			return batch, next, err
		}
		committed, err := s.CountAfter(ctx, 0, nil)
		if err != nil {
			return nil, after, fmt.Errorf("count committed events: %w", err)
		}
		// Nothing is missing: one more read, after the count, decides.
		if confirmed = s.seen >= committed; confirmed {
			continue
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			s.log.Warn("committed events are held back by an older transaction still in flight; waiting",
				"held_back", committed-s.seen, "waiting", time.Since(waitingSince).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return nil, after, ctx.Err()
		case <-time.After(s.poll):
		}
	}
}
