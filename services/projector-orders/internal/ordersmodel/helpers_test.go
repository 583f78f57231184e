package ordersmodel_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

// newDB returns a fresh database with the event store and read-model schemas.
func newDB(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatal(err)
	}
	if err := ordersdb.Migrate(url); err != nil {
		t.Fatal(err)
	}
	return url, testenv.NewPool(t, url)
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// at is t0 plus n seconds and a sub-microsecond part that Postgres drops,
// so tests notice if a computed row keeps nanoseconds.
func at(n int) time.Time { return t0.Add(time.Duration(n)*time.Second + 123456789) }

// us is at(n) as Postgres stores it.
func us(n int) time.Time { return at(n).Truncate(time.Microsecond) }

// ev builds an envelope as the store would have stored it: the position
// doubles as the recorded_at offset in seconds.
func ev(id uuid.UUID, version, position int64, p events.Payload) events.Envelope {
	return events.Envelope{
		EventID: uuid.New(), StreamType: events.StreamTypeOf(p.EventType()), StreamID: id,
		Version: version, Position: position, Type: p.EventType(),
		SchemaVersion: events.Default.CurrentVersion(p.EventType()),
		OccurredAt:    at(int(position)), RecordedAt: at(int(position)), Data: p,
	}
}

// placedV1 decodes an OrderPlaced in its schema version 1 shape (no tax, no
// address), as an old stored event reaches the model: through the upcaster.
func placedV1(t testing.TB, customer uuid.UUID, items []events.LineItem, currency string) events.OrderPlaced {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"customer_id": customer, "items": items, "currency": currency})
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.Default.Decode(events.TypeOrderPlaced, 1, raw)
	if err != nil {
		t.Fatal(err)
	}
	return p.(events.OrderPlaced)
}

func dump(t testing.TB, pool *pgxpool.Pool) ordersmodel.Rows {
	t.Helper()
	rows, err := ordersmodel.Dump(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func checkpoint(t testing.TB, pool *pgxpool.Pool) ordersmodel.Checkpoint {
	t.Helper()
	cp, ok, err := ordersmodel.ReadCheckpoint(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("no checkpoint row")
	}
	return cp
}

// assertRows compares every row, reporting the first differing ones.
func assertRows(t testing.TB, got, want ordersmodel.Rows) {
	t.Helper()
	if diff := got.Diff(want); len(diff) > 0 {
		for _, d := range diff {
			t.Error(d)
		}
		t.FailNow()
	}
}

func mustProject(t testing.TB, evs []events.Envelope) ordersmodel.Rows {
	t.Helper()
	rows, err := ordersmodel.Project(evs)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
