package eventstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

// Appends that arrive while others are being written are written together
// in one statement, and a request that fails there fails alone. The test
// holds a SHARE lock on events so that the first appends (one per writer)
// block inside their writes; the others then queue behind them, and once
// the lock goes they are written as one group.
func TestGroupCommit(t *testing.T) {
	existing := uuid.New()
	sharedID := uuid.New()
	tests := []struct {
		name    string
		writers int
		reqs    []AppendRequest
		// wantErr[i] is the sentinel request i must fail with (nil: written).
		// Of each pair in wantOneOf, exactly one request is written and the
		// other fails with loserErr.
		wantErr   []error
		wantOneOf []oneOf
	}{
		{
			name:    "a gap fails alone",
			writers: 1,
			reqs: []AppendRequest{
				deposit(uuid.New(), 0, uuid.Nil),
				deposit(existing, 5, uuid.Nil), // the stream is at 1
				deposit(uuid.New(), 0, uuid.Nil),
			},
			wantErr: []error{nil, ErrVersionConflict, nil},
		},
		{
			name:    "a lost race and a duplicate event id fail alone",
			writers: 1,
			reqs: []AppendRequest{
				deposit(uuid.New(), 0, uuid.Nil),
				deposit(existing, 1, uuid.Nil),
				deposit(existing, 1, uuid.Nil),
				deposit(uuid.New(), 0, sharedID),
				deposit(uuid.New(), 0, sharedID),
				deposit(uuid.New(), 0, uuid.Nil),
			},
			wantErr:   []error{nil, nil, nil, nil, nil, nil},
			wantOneOf: []oneOf{{requests: [2]int{1, 2}, loserErr: ErrVersionConflict}, {requests: [2]int{3, 4}, loserErr: ErrDuplicateEvent}},
		},
		{
			name:    "two writers",
			writers: 2,
			reqs:    []AppendRequest{deposit(uuid.New(), 0, uuid.Nil), deposit(existing, 1, uuid.Nil), deposit(uuid.New(), 0, uuid.Nil)},
			wantErr: []error{nil, nil, nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url := testenv.NewDatabase(t)
			if err := Migrate(url); err != nil {
				t.Fatal(err)
			}
			pool := testenv.NewPool(t, url)
			reg := prometheus.NewRegistry()
			s := New(pool, WithMetrics(reg), WithGroupWriters(tc.writers))
			if _, err := s.Append(ctx, deposit(existing, 0, uuid.Nil)); err != nil {
				t.Fatal(err)
			}

			lock, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Rollback(ctx) //nolint:errcheck // released below; a no-op then
			if _, err := lock.Exec(ctx, "LOCK TABLE events IN SHARE MODE"); err != nil {
				t.Fatal(err)
			}
			first := make(chan error, tc.writers)
			for w := 1; w <= tc.writers; w++ {
				go func() {
					_, err := s.Append(ctx, deposit(uuid.New(), 0, uuid.Nil))
					first <- err
				}()
				waitFor(t, "a blocked append to take its group", func() bool { writing, queued := s.group.state(); return writing == w && queued == 0 })
			}
			errs := make([]chan error, len(tc.reqs))
			for i, req := range tc.reqs {
				errs[i] = make(chan error, 1)
				go func() {
					_, err := s.Append(ctx, req)
					errs[i] <- err
				}()
			}
			waitFor(t, "every append to queue", func() bool { _, queued := s.group.state(); return queued == len(tc.reqs) })
			if err := lock.Rollback(ctx); err != nil {
				t.Fatal(err)
			}

			for range tc.writers {
				if err := <-first; err != nil {
					t.Fatalf("blocked append: %v", err)
				}
			}
			got := make([]error, len(tc.reqs))
			for i := range errs {
				got[i] = <-errs[i]
			}
			want := slices.Clone(tc.wantErr)
			for _, pair := range tc.wantOneOf {
				a, b := pair.requests[0], pair.requests[1]
				if (got[a] == nil) == (got[b] == nil) {
					t.Errorf("requests %d and %d: errors %v and %v, want exactly one written", a, b, got[a], got[b])
					continue
				}
				if got[a] == nil {
					a = b
				}
				want[a] = pair.loserErr
			}
			for i := range tc.reqs {
				if (want[i] == nil && got[i] != nil) || (want[i] != nil && !errors.Is(got[i], want[i])) {
					t.Errorf("request %d: error %v, want %v", i, got[i], want[i])
				}
			}
			if t.Failed() {
				return
			}

			// What was stored is exactly what the outcomes say.
			for i, req := range tc.reqs {
				read, err := s.ReadStream(ctx, req.StreamID, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				stored := slices.ContainsFunc(read, func(e events.Envelope) bool { return e.EventID == req.Events[0].EventID })
				if stored != (got[i] == nil) {
					t.Errorf("request %d: error %v, but its event stored: %v", i, got[i], stored)
				}
			}

			// The setup's statement, one per blocked append, and one for all the others.
			count, sum := histogram(t, reg, "eventstore_append_group_size")
			if wantCount, wantSum := 2+tc.writers, 1+tc.writers+len(tc.reqs); count != uint64(wantCount) || sum != float64(wantSum) {
				t.Errorf("%d groups of %v appends in all, want %d groups of %d", count, sum, wantCount, wantSum)
			}
		})
	}
}

type oneOf struct {
	requests [2]int
	loserErr error
}

// deposit appends a deposit to stream at expected; a nil eventID gets a new one.
func deposit(stream uuid.UUID, expected int64, eventID uuid.UUID) AppendRequest {
	if eventID == uuid.Nil {
		eventID = uuid.New()
	}
	return AppendRequest{StreamType: events.StreamAccount, StreamID: stream, ExpectedVersion: expected,
		Events: []NewEvent{{EventID: eventID, Data: events.FundsDeposited{AmountCents: 1, Source: "test"}}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// histogram returns the sample count and sum of the histogram name in reg.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// state says whether a group is being written and how many appends wait.
func (g *appendGroup) state() (writing, queued int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.writing, len(g.queue)
}
