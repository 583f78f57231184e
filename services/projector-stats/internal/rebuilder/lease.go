package rebuilder

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ErrBusy means another rebuild of the same deployment holds the lease.
var ErrBusy = errors.New("another stats rebuild is running")

// ErrLeaseLost means the rebuild lease expired or was taken while a rebuild
// ran (Redis unreachable for longer than the lease's time to live); the
// rebuild stops, because another one may now be filling the same namespace.
var ErrLeaseLost = errors.New("stats rebuild lease lost")

// renewScript extends the lease only if it still holds our token.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes the lease only if it still holds our token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// lease is a Redis key holding a random token with a time to live, renewed
// in the background until released. A rebuild holds it from Prepare until
// the old namespace is deleted.
type lease struct {
	rdb   Redis
	key   string
	token string
	ttl   time.Duration
	lost  atomic.Bool
	stop  chan struct{}
	done  chan struct{}
}

// acquireLease takes the lease at key, waiting up to wait while another
// holder has it. onLost is called (once) if the lease is lost before it is
// released.
func acquireLease(ctx context.Context, rdb Redis, key string, ttl, wait time.Duration, onLost func(error)) (*lease, error) {
	l := &lease{rdb: rdb, key: key, token: uuid.NewString(), ttl: ttl, stop: make(chan struct{}), done: make(chan struct{})}
	deadline := time.Now().Add(wait)
	for {
		ok, err := rdb.SetNX(ctx, key, l.token, ttl).Result()
		if err != nil {
			return nil, fmt.Errorf("take rebuild lease %s: %w", key, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			holder, _ := rdb.Get(ctx, key).Result()
			return nil, fmt.Errorf("%w: %s is held by %q", ErrBusy, key, holder)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for rebuild lease %s: %w", key, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
	go l.keepAlive(onLost)
	return l, nil
}

// keepAlive renews the lease every third of its time to live. A renewal
// that finds another token, or no success for a whole time to live, means
// the lease is lost.
func (l *lease) keepAlive(onLost func(error)) {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int64()
		cancel()
		var cause error
		switch {
		case err == nil && n == 1:
			lastOK = time.Now()
			continue
		case err == nil:
			cause = fmt.Errorf("%w: %s no longer holds this rebuild's token", ErrLeaseLost, l.key)
		case time.Since(lastOK) >= l.ttl:
			cause = fmt.Errorf("%w: not renewed for %s: %w", ErrLeaseLost, l.ttl, err)
		default:
			continue // retry at the next tick
		}
		l.lost.Store(true)
		onLost(cause)
		return
	}
}

// held reports whether the lease has not been lost (so far).
func (l *lease) held() bool { return !l.lost.Load() }

// release stops the renewals and deletes the lease if it is still ours.
func (l *lease) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("release rebuild lease %s: %w", l.key, err)
	}
	return nil
}
