package changefeed

import (
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/readmodel/ordersdb"
)

func TestDeliverWakesTheWatchersOfTheNamedStreams(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	tests := []struct {
		name    string
		payload string
		woken   map[uuid.UUID]bool
	}{
		{"one stream", ordersdb.ChangePayloads([]uuid.UUID{a})[0], map[uuid.UUID]bool{a: true}},
		{"two streams", ordersdb.ChangePayloads([]uuid.UUID{c, b})[0], map[uuid.UUID]bool{b: true, c: true}},
		{"a stream no one watches", ordersdb.ChangePayloads([]uuid.UUID{uuid.New()})[0], map[uuid.UUID]bool{}},
		{"an unreadable payload wakes everyone", "not ids", map[uuid.UUID]bool{a: true, b: true, c: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			chans := map[uuid.UUID]<-chan struct{}{}
			for _, id := range []uuid.UUID{a, b, c} {
				ch, stop := f.Watch(id)
				defer stop()
				chans[id] = ch
			}
			f.deliver(tt.payload)
			f.deliver(tt.payload) // a second change before the watcher looks leaves one wake-up
			for id, ch := range chans {
				got := 0
				for len(ch) > 0 {
					<-ch
					got++
				}
				if want := map[bool]int{true: 1}[tt.woken[id]]; got != want {
					t.Errorf("watcher of %s woken %d times, want %d", id, got, want)
				}
			}
		})
	}
}

func TestStopForgetsTheWatcher(t *testing.T) {
	f := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	id := uuid.New()
	first, stopFirst := f.Watch(id)
	second, stopSecond := f.Watch(id)
	stopFirst()
	f.deliver(id.String())
	if len(first) != 0 || len(second) != 1 {
		t.Fatalf("after the first stopped: first has %d wake-ups, second %d; want 0 and 1", len(first), len(second))
	}
	stopSecond()
	if n := len(f.watchers); n != 0 {
		t.Fatalf("%d streams still watched after every watcher stopped", n)
	}
}
