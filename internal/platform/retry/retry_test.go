package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/escqrs/platform/internal/platform/retry"
)

func TestWait(t *testing.T) {
	p := retry.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for attempt, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond,
		3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 30: 50 * time.Millisecond} {
		if got := p.Wait(attempt); got != want {
			t.Errorf("Wait(%d) = %s, want %s", attempt, got, want)
		}
	}
}

var errBoom = errors.New("boom")

func TestDo(t *testing.T) {
	fast := retry.Policy{Initial: time.Microsecond, Max: time.Microsecond}
	for _, tc := range []struct {
		name      string
		failures  int // op fails this many times, then succeeds
		retry     func(int, error) bool
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", 0, nil, 1, nil},
		{"succeeds after failures", 3, nil, 4, nil},
		{"gives up after n attempts", 10, retry.Attempts(3, nil), 3, errBoom},
		{"stops on an error not retryable", 10, retry.Attempts(5, func(error) bool { return false }), 1, errBoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			p := fast
			p.Retry = tc.retry
			var retried []int
			p.OnRetry = func(attempt int, err error, _ time.Duration) { retried = append(retried, attempt) }
			err := retry.Do(context.Background(), p, func(context.Context) error {
				calls++
				if calls <= tc.failures {
					return errBoom
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Do = %v, want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls {
				t.Fatalf("op called %d times, want %d", calls, tc.wantCalls)
			}
			if len(retried) != calls-1 && tc.wantErr == nil {
				t.Fatalf("OnRetry called for %v, want %d attempts", retried, calls-1)
			}
		})
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := retry.Do(ctx, retry.Policy{Initial: time.Hour}, func(context.Context) error {
		calls++
		cancel()
		return errBoom
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
		t.Fatalf("Do = %v, want context.Canceled wrapping boom", err)
	}
	if calls != 1 {
		t.Fatalf("op called %d times, want 1", calls)
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v", err)
	}
	if err := retry.Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
