package rebuild_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

type collected struct{ evs []events.Envelope }

func (c *collected) HandleBatch(_ context.Context, batch []events.Envelope) error {
	c.evs = append(c.evs, batch...)
	return nil
}

func openAccount(id uuid.UUID) eventstore.AppendRequest {
	return eventstore.AppendRequest{StreamType: events.StreamAccount, StreamID: id, Events: []eventstore.NewEvent{
		{Data: events.AccountOpened{Owner: "test", Currency: "EUR"}}}}
}

// TestDrainWaitsForHiddenEvents: an append held open inside its
// transaction hides, in commit-safe order, an event committed after it. A
// replay started meanwhile must not end on its empty reads: it waits until
// the held transaction ends, then hands over both events, the held one
// first.
func TestDrainWaitsForHiddenEvents(t *testing.T) {
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatal(err)
	}
	store := eventstore.New(testenv.NewPool(t, url))
	ctx := context.Background()
	if _, err := store.Append(ctx, openAccount(uuid.New())); err != nil {
		t.Fatal(err)
	}

	slow, fast := uuid.New(), uuid.New()
	inTx, release, slowDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		req := openAccount(slow)
		req.InTx = func(context.Context, pgx.Tx, []events.Envelope) error {
			close(inTx)
			<-release
			return nil
		}
		_, err := store.Append(ctx, req)
		slowDone <- err
	}()
	<-inTx
	if _, err := store.Append(ctx, openAccount(fast)); err != nil {
		t.Fatal(err)
	}

	var got collected
	var tr rebuild.Tracker
	replayed := make(chan error, 1)
	go func() { replayed <- rebuild.Replay(ctx, store, &got, 0, &tr, rebuild.Options{}) }()
	select {
	case err := <-replayed:
		t.Fatalf("the replay ended (%v) with %d events while an older transaction hid committed ones", err, len(got.evs))
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if err := <-replayed; err != nil {
		t.Fatal(err)
	}
	if len(got.evs) != 3 || got.evs[1].StreamID != slow || got.evs[2].StreamID != fast {
		t.Fatalf("replayed %d events %+v, want the first account, then the held one, then the other", len(got.evs), got.evs)
	}
	if p := tr.Get(); p.Phase != "done" || p.Events != 3 {
		t.Errorf("progress %+v, want done with 3 events", p)
	}
}
