package rebuilder

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

func TestNextNamespace(t *testing.T) {
	tests := []struct {
		prefix, active, want string
	}{
		{"", "s1", "s2"},
		{"", "s9", "s10"},
		{"", "s41", "s42"},
		{"p:", "p:s1", "p:s2"},
		{"p:", "p:s17", "p:s18"},
		{"", "custom", "s2"},   // set by hand: start the sequence
		{"", "s01", "s2"},      // not a generation: no leading zeros
		{"", "s", "s2"},        // no number
		{"", "s3x", "s2"},      // not a number
		{"p:", "s5", "p:s2"},   // another prefix's namespace
		{"p:", "p:s0", "p:s2"}, // generations start at 1
		{"[x]", "[x]s4", "[x]s5"},
	}
	for _, tt := range tests {
		if got := nextNamespace(tt.prefix, tt.active); got != tt.want {
			t.Errorf("nextNamespace(%q, %q) = %q, want %q", tt.prefix, tt.active, got, tt.want)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	tests := map[string]string{
		"plain-prefix:": "plain-prefix:",
		"a*b?c":         `a\*b\?c`,
		"[x]":           `\[x\]`,
		`back\slash`:    `back\\slash`,
	}
	for in, want := range tests {
		if got := globEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSweepStale runs the sweep on real Redis with a prefix full of glob
// metacharacters: it deletes exactly the generated namespaces other than the
// active one, under this prefix only.
func TestSweepStale(t *testing.T) {
	rdb := statstest.NewRedis(t)
	ctx := context.Background()
	id := uuid.NewString()
	prefix := "t?[" + id + "]*:"
	other := "tX[" + id + "]yy:" // what the prefix would match as a glob
	for _, p := range []string{prefix, other} {
		statstest.DeleteMatching(t, rdb, globEscape(p)+"*")
	}
	keys := map[string]bool{ // key: must survive the sweep
		prefix + "s1:customer:a":          true, // the active namespace
		prefix + "s1:checkpoint":          true,
		prefix + "s2:customer:a":          false, // leftover of an aborted fill
		prefix + "s2:order:b":             false,
		prefix + "s10:top-customers":      false, // an old namespace not deleted
		prefix + "s0:x":                   true,  // not a generation
		prefix + "s01:x":                  true,
		prefix + "s2x:y":                  true,
		prefix + "custom:x":               true,
		prefix + "stats:active-namespace": true,
		prefix + "s3":                     true, // no namespace separator
		other + "s2:customer:a":           true, // another deployment
	}
	for k := range keys {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n, err := sweepStale(ctx, rdb, prefix, prefix+"s1")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("sweep deleted %d keys, want 3", n)
	}
	for k, survive := range keys {
		exists := rdb.Exists(ctx, k).Val() == 1
		if exists != survive {
			t.Errorf("key %q exists = %v after the sweep, want %v", k, exists, survive)
		}
	}
}

// TestDeleteNamespace deletes more keys than one UNLINK takes, and only the
// namespace's own.
func TestDeleteNamespace(t *testing.T) {
	rdb := statstest.NewRedis(t)
	ctx := context.Background()
	ns := "test-del-" + uuid.NewString() + ":s1"
	statstest.DeleteMatching(t, rdb, globEscape(ns)+"*")
	pipe := rdb.Pipeline()
	for i := range 2500 {
		pipe.Set(ctx, ns+":k:"+uuid.NewString(), i, 0)
	}
	pipe.Set(ctx, ns+"0:k", "other namespace", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := deleteNamespace(ctx, rdb, ns)
	if err != nil || n != 2500 {
		t.Fatalf("deleteNamespace = %d, %v; want 2500", n, err)
	}
	if left := statstest.ScanKeys(t, rdb, globEscape(ns)+"*"); !slices.Equal(left, []string{ns + "0:k"}) {
		t.Fatalf("left %v, want only %s", left, ns+"0:k")
	}
}

func TestLease(t *testing.T) {
	rdb := statstest.NewRedis(t)
	ctx := context.Background()
	key := "test-lease-" + uuid.NewString()
	statstest.DeleteMatching(t, rdb, key)
	never := func(err error) { t.Errorf("lease lost: %v", err) }

	l, err := acquireLease(ctx, rdb, key, 300*time.Millisecond, 0, never)
	if err != nil {
		t.Fatal(err)
	}
	// Renewals keep it past its time to live; a second taker gives up.
	time.Sleep(700 * time.Millisecond)
	if _, err := acquireLease(ctx, rdb, key, time.Second, 250*time.Millisecond, never); !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: %v, want ErrBusy", err)
	}
	if err := l.release(ctx); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, key).Val() != 0 {
		t.Fatal("lease key still exists after release")
	}

	// A taker that waits gets the lease when the holder releases it.
	l1, err := acquireLease(ctx, rdb, key, time.Second, 0, never)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		l1.release(context.Background())
	}()
	l2, err := acquireLease(ctx, rdb, key, time.Second, 5*time.Second, never)
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	if err := l2.release(ctx); err != nil {
		t.Fatal(err)
	}

	// A lease taken over by someone else is reported lost, and its release
	// leaves the new holder's key alone.
	lost := make(chan error, 1)
	l3, err := acquireLease(ctx, rdb, key, 300*time.Millisecond, 0, func(err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, key, "someone else", 0)
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("lost with %v, want ErrLeaseLost", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("lease takeover not detected")
	}
	if l3.held() {
		t.Fatal("held() = true after the lease was lost")
	}
	if err := l3.release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rdb.Get(ctx, key).Val(); got != "someone else" {
		t.Fatalf("release deleted the new holder's lease (key = %q)", got)
	}
}
