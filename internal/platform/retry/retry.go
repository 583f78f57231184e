// Package retry is the platform's one way to try an operation again: an
// exponential backoff that stops when the context ends, and a loop that
// decides after each failure whether another attempt is worth it.
package retry

import (
	"context"
	"fmt"
	"time"
)

// Policy says how long to wait between attempts and whether to go on.
type Policy struct {
	// Initial is the wait after the first failure; each later wait doubles,
	// up to Max.
	Initial, Max time.Duration
	// Retry reports whether to try again after attempt (1-based) failed
	// with err. Nil retries every error until the context ends.
	Retry func(attempt int, err error) bool
	// OnRetry, if set, is called before each wait (for a log line or a
	// metric).
	OnRetry func(attempt int, err error, wait time.Duration)
}

// Attempts returns a Retry func that allows n attempts in all of errors
// that retryable accepts (nil: every error).
func Attempts(n int, retryable func(error) bool) func(int, error) bool {
	return func(attempt int, err error) bool {
		return attempt < n && (retryable == nil || retryable(err))
	}
}

// Wait returns the wait after attempt (1-based) failed.
func (p Policy) Wait(attempt int) time.Duration {
	d := p.Initial
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	for i := 1; i < attempt && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
}

// Do calls op until it succeeds, Retry declines another attempt (Do then
// returns op's last error), or ctx ends (Do then returns ctx's error, with
// op's last error wrapped as well).
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if p.Retry != nil && !p.Retry(attempt, err) {
			return err
		}
		wait := p.Wait(attempt)
		if p.OnRetry != nil {
			p.OnRetry(attempt, err, wait)
		}
		if serr := Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}

// Sleep waits d, or until ctx ends, whichever comes first; it returns ctx's
// error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
