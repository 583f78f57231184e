package e2e

import (
	"context"
	"testing"
	"time"
)

// 1,000 mixed commands through the HTTP command API; then every read model
// equals the reference fold of the event store, exactly.
func TestEndToEnd(t *testing.T) {
	s := newSystem(t)
	s.startAll(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := newWorkload(s.command, 40)
	if err := w.run(ctx, 1000, 8, 1, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("commands: %s", w.summary())
	if w.statuses[409].Load() == 0 || w.statuses[422].Load() == 0 {
		t.Fatalf("workload produced no rejected commands (%s): it must exercise them", w.summary())
	}
	ref := s.awaitModels(ctx, 90*time.Second)
	t.Logf("read models equal the fold of %d events: %d orders, %d accounts, %d customers", ref.events, len(ref.orders), len(ref.accounts), len(ref.customers))
}

// Three replicas of each projector; one replica of each is SIGKILLed in the
// middle of 5,000 commands. After the rest catch up, the models again equal
// the reference fold: nothing lost, nothing counted twice.
func TestScaleAndKill(t *testing.T) {
	s := newSystem(t)
	s.startAll(3)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newWorkload(s.command, 60)
	killed := make(chan struct{})
	err := w.run(ctx, 5000, 8, 2, func(done int64) {
		if done == 2500 {
			go func() {
				defer close(killed)
				for _, svc := range []string{"projector-orders-1", "projector-stats-1", "search-indexer-1"} {
					s.kill(svc)
				}
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	<-killed
	t.Logf("commands: %s", w.summary())
	ref := s.awaitModels(ctx, 3*time.Minute)
	t.Logf("after SIGKILL of one replica of each projector, read models equal the fold of %d events", ref.events)
}
