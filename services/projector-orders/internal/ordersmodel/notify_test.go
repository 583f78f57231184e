package ordersmodel_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// TestApplyAnnouncesChanges: every batch that commits names its streams on
// ordersdb.ChangesChannel, on the fast path and on the locking one; a batch
// that changes nothing announces nothing.
func TestApplyAnnouncesChanges(t *testing.T) {
	ctx := context.Background()
	evs := scenario(t)
	url, pool := newDB(t)
	m := ordersmodel.New(pool)
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+ordersdb.ChangesChannel); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		batch  []events.Envelope
		locked bool
		want   []uuid.UUID
	}{
		{"new streams (fast path)", evs[0:10], false, streamsOf(evs[0:10])},
		{"a batch overlapping the one before (locking path)", evs[6:18], true, streamsOf(evs[6:18])},
		{"a batch applied before", evs[0:18], true, nil},
	}
	for _, s := range steps {
		res, err := m.ApplyBatch(ctx, s.batch)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Locked != s.locked {
			t.Fatalf("%s: took the locking path: %v, want %v", s.name, res.Locked, s.locked)
		}
		if got := announced(t, listener); !slices.Equal(got, s.want) {
			t.Fatalf("%s: announced %v, want %v", s.name, got, s.want)
		}
	}
}

// streamsOf is the distinct stream ids of evs, sorted.
func streamsOf(evs []events.Envelope) []uuid.UUID {
	var ids []uuid.UUID
	for _, e := range evs {
		ids = append(ids, e.StreamID)
	}
	return sortedIDs(ids)
}

func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(ids)
}

// announced is every stream id the listener is told about until it hears
// nothing for a while, sorted.
func announced(t *testing.T, listener *pgx.Conn) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		n, err := listener.WaitForNotification(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return sortedIDs(ids)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := ordersdb.ParseChangePayload(n.Payload)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
}
