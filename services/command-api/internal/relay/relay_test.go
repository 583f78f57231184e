package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/internal/testsupport/testenv"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/relay"
)

const partitions = 3

type fixture struct {
	store  *eventstore.Store
	url    string
	topics map[events.StreamType]string
	log    *slog.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testenv.RequireKafka(t)
	url := testenv.NewDatabase(t)
	if err := eventstore.Migrate(url); err != nil {
		t.Fatal(err)
	}
	prefix := "test-" + uuid.NewString()[:8]
	f := &fixture{
		store: eventstore.New(testenv.NewPool(t, url)),
		url:   url,
		topics: map[events.StreamType]string{
			events.StreamOrder: prefix + "-order-events", events.StreamAccount: prefix + "-account-events",
		},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkabus.EnsureTopics(ctx, testenv.KafkaBrokers(), partitions, f.topics[events.StreamOrder], f.topics[events.StreamAccount]); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) newRelay(t *testing.T) *relay.Relay {
	return f.newRelayWith(t, 0)
}

// newRelayWith is newRelay saving its checkpoint at most once per
// checkpointEvery (0: the default).
func (f *fixture) newRelayWith(t *testing.T, checkpointEvery time.Duration) *relay.Relay {
	pool := testenv.NewPool(t, f.url)
	return relay.New(pool, f.store, kafkabus.NewProducer(testenv.KafkaBrokers()), relay.Config{BatchSize: 100, PollInterval: 50 * time.Millisecond, LockRetry: 100 * time.Millisecond,
		CheckpointEvery: checkpointEvery, Topic: func(st events.StreamType) string { return f.topics[st] }}, f.log, nil)
}

// start runs r until the returned stop is called.
func start(r *relay.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return func() { cancel(); <-done }
}

// appendEvents appends n deposits spread over streams, opening each stream first.
func (f *fixture) appendEvents(t *testing.T, streams []uuid.UUID, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id := streams[i%len(streams)]
		v, err := f.store.StreamVersion(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var p events.Payload = events.FundsDeposited{AmountCents: int64(i + 1), Source: "relay-test"}
		st := events.StreamAccount
		if v == 0 {
			p = events.AccountOpened{Owner: "o", Currency: "EUR"}
		}
		if _, err := f.store.Append(ctx, eventstore.AppendRequest{StreamType: st, StreamID: id, ExpectedVersion: v,
			Events: []eventstore.NewEvent{{Data: p}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// consumer reads every partition of the test topics directly and checks each message.
type consumer struct {
	mu       sync.Mutex
	seen     map[uuid.UUID]bool // event ids
	messages int
	next     map[uuid.UUID]int64 // per stream: next version never seen before
	errs     []string
}

func (f *fixture) consume(t *testing.T) (*consumer, func()) {
	c := &consumer{seen: map[uuid.UUID]bool{}, next: map[uuid.UUID]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, topic := range f.topics {
		for p := 0; p < partitions; p++ {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers(), Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.Close()
				for {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						return
					}
					c.check(m)
				}
			}()
		}
	}
	return c, func() { cancel(); wg.Wait() }
}

func (c *consumer) check(m kafka.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.messages++
	var e events.Envelope
	if err := json.Unmarshal(m.Value, &e); err != nil {
		c.errs = append(c.errs, "decode: "+err.Error())
		return
	}
	if string(m.Key) != e.StreamID.String() {
		c.errs = append(c.errs, fmt.Sprintf("key %q, want stream id %s", m.Key, e.StreamID))
	}
	var typ string
	for _, h := range m.Headers {
		if h.Key == "type" {
			typ = string(h.Value)
		}
	}
	if typ != e.Type {
		c.errs = append(c.errs, fmt.Sprintf("type header %q, want %q", typ, e.Type))
	}
	if c.seen[e.EventID] {
		return // a redelivery: allowed, at least once
	}
	c.seen[e.EventID] = true
	want := c.next[e.StreamID] + 1
	if c.next[e.StreamID] == 0 {
		want = 1
	}
	if e.Version != want {
		c.errs = append(c.errs, fmt.Sprintf("stream %s: first delivery of version %d, want %d", e.StreamID, e.Version, want))
	}
	c.next[e.StreamID] = e.Version
}

// count is how many distinct events the consumer has seen.
func (c *consumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *consumer) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		got, errs := len(c.seen), append([]string(nil), c.errs...)
		c.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("consumer saw bad messages: %v", errs[:min(len(errs), 5)])
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer saw %d of %d events in %s", got, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streams(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

// The relay is stopped in the middle of a stream of appends and a new one
// started: every event is delivered at least once, each stream in order.
func TestRelayResumesAfterStop(t *testing.T) {
	f := newFixture(t)
	c, stopConsumer := f.consume(t)
	defer stopConsumer()
	ids := streams(40)

	first := f.newRelay(t)
	stopFirst := start(first)
	appended := make(chan struct{})
	go func() { defer close(appended); f.appendEvents(t, ids, 2000) }()
	for first.Published() < 300 {
		time.Sleep(5 * time.Millisecond)
	}
	stopFirst()
	t.Logf("first relay stopped after publishing %d events", first.Published())

	second := f.newRelay(t)
	defer start(second)()
	<-appended
	c.waitFor(t, 2000, 60*time.Second)
	if second.Published() == 0 {
		t.Fatal("second relay published nothing: the test did not restart mid-stream")
	}
	t.Logf("%d messages for 2000 events (redeliveries: %d)", c.messages, c.messages-2000)
}

// Two relays run at once: only the lock holder publishes; when it dies the
// other takes over.
func TestRelayLeaderElection(t *testing.T) {
	f := newFixture(t)
	c, stopConsumer := f.consume(t)
	defer stopConsumer()
	ids := streams(10)

	a, b := f.newRelay(t), f.newRelay(t)
	stopA := start(a)
	time.Sleep(200 * time.Millisecond) // let a win the lock
	stopB := start(b)
	defer stopB()

	f.appendEvents(t, ids, 500)
	c.waitFor(t, 500, 30*time.Second)
	for deadline := time.Now().Add(10 * time.Second); a.Published() < 500 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if a.Published() != 500 || b.Published() != 0 {
		t.Fatalf("published a=%d b=%d: want only the leader to publish", a.Published(), b.Published())
	}

	stopA() // the leader dies: its lock connection closes
	f.appendEvents(t, ids, 500)
	c.waitFor(t, 1000, 30*time.Second)
	// The counter moves after Kafka acknowledges a batch, a moment after the
	// consumer may already have seen the messages.
	for deadline := time.Now().Add(10 * time.Second); b.Published() < 500 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Published() < 500 {
		t.Fatalf("standby published %d after the leader died, want >= 500", b.Published())
	}
}

// Wake reports leadership, and a leader woken by it publishes at once: the
// relays here poll once an hour and nobody sends a NOTIFY, so only Wake can
// make them read the events appended after they became leader and standby.
func TestWakeWithoutNotify(t *testing.T) {
	f := newFixture(t)
	c, stopConsumer := f.consume(t)
	defer stopConsumer()
	newRelay := func() *relay.Relay {
		return relay.New(testenv.NewPool(t, f.url), f.store, kafkabus.NewProducer(testenv.KafkaBrokers()), relay.Config{BatchSize: 100, PollInterval: time.Hour,
			LockRetry: 50 * time.Millisecond, Topic: func(st events.StreamType) string { return f.topics[st] }}, f.log, nil)
	}
	leader, standby := newRelay(), newRelay()
	if leader.Wake() {
		t.Fatal("Wake reported leadership before the relay ran")
	}
	defer start(leader)()
	for deadline := time.Now().Add(10 * time.Second); !leader.Wake(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not become leader")
		}
	}
	defer start(standby)()
	time.Sleep(200 * time.Millisecond) // the standby has tried the lock a few times
	if standby.Wake() {
		t.Fatal("the standby's Wake reported leadership")
	}

	f.appendEvents(t, streams(5), 50)
	// A read sees nothing past the oldest write transaction running in the
	// cluster (other tests' too), so one wake-up may publish only part of
	// what was appended: wake again until everything is out.
	for deadline := time.Now().Add(10 * time.Second); c.count() < 50 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !leader.Wake() {
			t.Fatal("the leader's Wake reported no leadership")
		}
	}
	c.waitFor(t, 50, time.Second)
	// The counter moves after Kafka acknowledges, a moment after the consumer may have seen the messages.
	for deadline := time.Now().Add(5 * time.Second); leader.Published() < 50 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if leader.Published() != 50 || standby.Published() != 0 {
		t.Fatalf("published leader=%d standby=%d, want 50 and 0", leader.Published(), standby.Published())
	}
}

// The checkpoint is saved off the publishing path, yet after a graceful stop
// it holds the last acknowledged batch (saved by then, or by the stop's own
// flush): a successor starts right after it and publishes nothing twice.
func TestStopSavesTheLastCheckpoint(t *testing.T) {
	f := newFixture(t)
	c, stopConsumer := f.consume(t)
	defer stopConsumer()
	ids := streams(5)
	f.appendEvents(t, ids, 120)

	first := f.newRelay(t)
	stopFirst := start(first)
	c.waitFor(t, 120, 30*time.Second)
	for deadline := time.Now().Add(10 * time.Second); first.Published() < 120 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stopFirst()
	if first.Published() != 120 {
		t.Fatalf("first relay published %d, want 120", first.Published())
	}
	pool := testenv.NewPool(t, f.url)
	var saved, last int64
	if err := pool.QueryRow(context.Background(), `SELECT position FROM checkpoints WHERE name = 'kafka-relay'`).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT max(position) FROM events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if saved != last {
		t.Fatalf("checkpoint at position %d after a graceful stop, want the last published event's %d", saved, last)
	}

	f.appendEvents(t, ids, 30)
	second := f.newRelay(t)
	defer start(second)()
	c.waitFor(t, 150, 30*time.Second)
	time.Sleep(200 * time.Millisecond) // a redelivery would arrive by now
	c.mu.Lock()
	messages := c.messages
	c.mu.Unlock()
	if messages != 150 {
		t.Fatalf("%d messages for 150 events: the successor republished %d", messages, messages-150)
	}
}

// The checkpoint is saved at most once per CheckpointEvery while the relay
// runs (the batches published meanwhile are saved by the next save or the
// stop), and at once when a save is due.
func TestCheckpointEvery(t *testing.T) {
	f := newFixture(t)
	pool := testenv.NewPool(t, f.url)
	ctx := context.Background()
	checkpoint := func() int64 {
		var saved int64
		err := pool.QueryRow(ctx, `SELECT position FROM checkpoints WHERE name = 'kafka-relay'`).Scan(&saved)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return saved
	}
	waitCheckpoint := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); checkpoint() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint at %d, want %d", checkpoint(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ids := streams(5)
	f.appendEvents(t, ids, 100)

	r := f.newRelayWith(t, time.Hour)
	stop := start(r)
	// The first save is not held back. It holds what the first read found:
	// all 100 events, or fewer when another transaction in the cluster (a
	// test running beside this one) held the commit-safe horizon back.
	var first int64
	for deadline := time.Now().Add(10 * time.Second); first == 0; first = checkpoint() {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint saved")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.appendEvents(t, ids, 50)
	for deadline := time.Now().Add(10 * time.Second); r.Published() < 150 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if r.Published() != 150 {
		t.Fatalf("published %d, want 150", r.Published())
	}
	time.Sleep(200 * time.Millisecond)
	if got := checkpoint(); got != first {
		t.Fatalf("checkpoint at %d within CheckpointEvery of the save at %d", got, first)
	}
	stop()
	var last int64
	if err := pool.QueryRow(ctx, `SELECT max(position) FROM events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(last)

	// With a short interval the running relay saves the rest by itself.
	f.appendEvents(t, ids, 30)
	defer start(f.newRelayWith(t, 50*time.Millisecond))()
	if err := pool.QueryRow(ctx, `SELECT max(position) FROM events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(last)
}
