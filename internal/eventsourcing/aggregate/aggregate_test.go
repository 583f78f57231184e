package aggregate_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t *testing.T) *eventstore.Store {
	t.Helper()
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatal(err)
	}
	return eventstore.New(testenv.NewPool(t, url))
}

// randomAccount drives random commands through the domain and appends what
// it decides, snapshotting through repo as the command API does. It returns
// the stream id.
func randomAccount(t *testing.T, store *eventstore.Store, repo *aggregate.Repository[account.State], rng *rand.Rand, steps int) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	state := account.State{}
	for i := 0; i < steps; i++ {
		var (
			payloads []events.Payload
			err      error
		)
		switch {
		case !state.Exists():
			payloads, err = account.DecideOpen(state, account.Open{Owner: "o", InitialBalanceCents: rng.Int64N(1000), Currency: "EUR"})
		case rng.IntN(3) == 0:
			payloads, err = account.DecideWithdraw(state, account.Withdraw{AmountCents: 1 + rng.Int64N(800), Reason: "r"})
		default:
			payloads, err = account.DecideDeposit(state, account.DepositFunds{AmountCents: 1 + rng.Int64N(500), Source: "s"})
		}
		if err != nil {
			continue // a rejected command appends nothing
		}
		from := state.Version
		evs := make([]eventstore.NewEvent, len(payloads))
		for i, p := range payloads {
			evs[i] = eventstore.NewEvent{Data: p}
		}
		appended, err := store.Append(ctx, eventstore.AppendRequest{StreamType: events.StreamAccount, StreamID: id, ExpectedVersion: from, Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		state = account.Fold(state, appended)
		repo.AfterAppend(ctx, state, from, appended[len(appended)-1].RecordedAt)
	}
	return id
}

func fullReplay(t *testing.T, store *eventstore.Store, id uuid.UUID, until int64, at time.Time) account.State {
	t.Helper()
	var s account.State
	err := store.ScanStream(context.Background(), id, eventstore.StreamRange{Until: until, At: at}, func(e events.Envelope) error {
		s = account.Evolve(s, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// For random command sequences, loading with snapshots equals a full replay,
// at the head and at every version.
func TestSnapshotEquivalence(t *testing.T) {
	store := newStore(t)
	reg := prometheus.NewRegistry()
	metrics := aggregate.NewMetrics(reg)
	repo := aggregate.NewRepository(store, aggregate.Accounts, 7, quiet, metrics)
	noSnapshots := aggregate.NewRepository(store, aggregate.Accounts, 0, quiet, nil)
	ctx := context.Background()
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		id := randomAccount(t, store, repo, rng, 60)
		head, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := fullReplay(t, store, id, 0, time.Time{}); !reflect.DeepEqual(head, want) {
			t.Fatalf("seed %d: snapshot load %+v != replay %+v", seed, head, want)
		}
		for v := int64(1); v <= head.Version; v++ {
			got, err := repo.LoadAt(ctx, id, v, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if want := fullReplay(t, store, id, v, time.Time{}); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d v%d: %+v != %+v", seed, v, got, want)
			}
		}
		if _, err := noSnapshots.Load(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if written := counter(t, reg, "aggregate_snapshots_written_total"); written < 5 {
		t.Fatalf("only %v snapshots written: the test did not exercise them", written)
	}
	if hits := counter(t, reg, "aggregate_snapshot_loads_total"); hits == 0 {
		t.Fatal("no load started from a snapshot")
	}
}

// A snapshot that cannot be decoded, has another schema, or disagrees with
// its own version is ignored: the load replays and is right.
func TestCorruptSnapshotFallsBackToReplay(t *testing.T) {
	store := newStore(t)
	ctx := context.Background()
	repo := aggregate.NewRepository(store, aggregate.Accounts, 0, quiet, nil)
	rng := rand.New(rand.NewPCG(9, 9))
	id := randomAccount(t, store, repo, rng, 30)
	want := fullReplay(t, store, id, 0, time.Time{})
	tests := []struct {
		name   string
		schema int
		state  string
	}{
		{"undecodable", 1, `{"balance_cents": "lots"}`},
		{"old schema", 0, `{"account_id":"` + id.String() + `","balance_cents":999999,"version":10}`},
		{"lies about its version", 1, `{"account_id":"` + id.String() + `","balance_cents":999999,"version":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			metrics := aggregate.NewMetrics(reg)
			r := aggregate.NewRepository(store, aggregate.Accounts, 0, quiet, metrics)
			if err := store.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, StreamType: events.StreamAccount, Version: 10,
				SchemaVersion: tt.schema, State: json.RawMessage(tt.state), EventRecordedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			got, err := r.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("load %+v, want %+v", got, want)
			}
			if n := counter(t, reg, "aggregate_snapshots_rejected_total"); n != 1 {
				t.Fatalf("rejected snapshots = %v, want 1", n)
			}
		})
	}
}

// The state at each recorded instant equals the fold of the events up to it;
// an instant before the stream existed is the zero state.
func TestLoadAtInstants(t *testing.T) {
	store := newStore(t)
	ctx := context.Background()
	repo := aggregate.NewRepository(store, aggregate.Accounts, 4, quiet, nil)
	rng := rand.New(rand.NewPCG(3, 3))
	id := randomAccount(t, store, repo, rng, 25)
	evs, err := store.ReadStream(ctx, id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		got, err := repo.LoadAt(ctx, id, 0, e.RecordedAt)
		if err != nil {
			t.Fatal(err)
		}
		if want := account.Fold(account.State{}, evs[:i+1]); !reflect.DeepEqual(got, want) {
			t.Fatalf("at %s (v%d): %+v, want %+v", e.RecordedAt, e.Version, got, want)
		}
	}
	before, err := repo.LoadAt(ctx, id, 0, evs[0].RecordedAt.Add(-time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	if before.Exists() {
		t.Fatalf("state before creation = %+v, want none", before)
	}
}

// counter sums every series of a counter family in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
