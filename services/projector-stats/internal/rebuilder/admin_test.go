package rebuilder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/services/projector-stats/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-stats/internal/statstest"
)

// TestAdminEndpoint drives a rebuild and a replay through the admin routes
// the projector mounts, over a real HTTP server. The first rebuild waits for
// a lease another rebuild holds, so it is reliably running when the second
// POST arrives.
func TestAdminEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.simulate(t, 31, 20, 2000)
	all := e.readAll(t)
	e.applyLive(t, all[:500], 250)
	if err := e.rdb.Set(ctx, e.lockKey, "another-rebuild", 30*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	e.rebuilder(rebuilder.WithLease(3*time.Second, 20*time.Second)).Admin(ctx).Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	code, body := call(t, http.MethodPost, srv.URL+"/admin/rebuild")
	if code != http.StatusAccepted || body["progress"] != "/admin/rebuild" {
		t.Fatalf("first POST: %d %v, want 202", code, body)
	}
	for _, path := range []string{"/admin/rebuild", "/admin/replay?from_position=0"} {
		if code, body := call(t, http.MethodPost, srv.URL+path); code != http.StatusConflict {
			t.Fatalf("POST %s while running: %d %v, want 409", path, code, body)
		}
	}
	// The job starts on its own goroutine: "starting" until it runs.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body = call(t, http.MethodGet, srv.URL+"/admin/rebuild")
		if body["phase"] != "starting" || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusOK || body["phase"] != "filling" {
		t.Fatalf("GET while waiting for the lease: %d %v, want phase filling", code, body)
	}
	for _, f := range []string{"phase", "events", "total_estimate", "position", "events_per_second", "eta_seconds", "started_at", "from_position", "caught_up_events"} {
		if _, ok := body[f]; !ok {
			t.Errorf("progress has no field %q: %v", f, body)
		}
	}

	e.rdb.Del(ctx, e.lockKey) // the other rebuild ends
	p := waitDone(t, srv.URL)
	maxPos := all[len(all)-1].Position
	if p.Error != "" || p.Events != int64(len(all)) || p.Total != int64(len(all)) || p.Position != maxPos ||
		p.EventsPerSec <= 0 || p.SwappedAt.IsZero() || p.FinishedAt.Before(p.SwappedAt) {
		t.Fatalf("finished rebuild progress %+v, want %d events up to position %d", p, len(all), maxPos)
	}
	// The job ends (after the tracker says done) once the old namespace is
	// deleted and the lease released.
	waitFor(t, "the lease release", func() bool { return e.rdb.Exists(ctx, e.lockKey).Val() == 0 })
	if keys := statstest.ScanKeys(t, e.rdb, e.ns(1)+":*"); len(keys) > 0 {
		t.Fatalf("old namespace still has %d keys", len(keys))
	}
	if got := e.active(t); got != e.ns(2) {
		t.Fatalf("active namespace %s, want %s", got, e.ns(2))
	}
	want := statstest.Reference(e.ns(2), all, fixedNow)
	statstest.AssertModel(t, e.rdb, e.ns(2), want)

	if code, body := call(t, http.MethodPost, srv.URL+"/admin/replay?from_position=x"); code != http.StatusBadRequest {
		t.Fatalf("POST replay with a bad position: %d %v, want 400", code, body)
	}
	if code, body := call(t, http.MethodPost, srv.URL+"/admin/replay?from_position=0"); code != http.StatusAccepted {
		t.Fatalf("POST replay: %d %v, want 202", code, body)
	}
	p = waitDone(t, srv.URL)
	if p.Error != "" || p.FromPosition != 0 || p.Events != int64(len(all)) {
		t.Fatalf("finished replay progress %+v", p)
	}
	// Everything was a duplicate: not even the checkpoint moved.
	statstest.AssertModel(t, e.rdb, e.ns(2), want)
}

func call(t *testing.T, method, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: decode: %v", method, url, err)
	}
	return resp.StatusCode, body
}

// waitDone polls GET /admin/rebuild until the job has finished.
func waitDone(t *testing.T, base string) rebuild.Progress {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/admin/rebuild")
		if err != nil {
			t.Fatal(err)
		}
		var p rebuild.Progress
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case p.Phase == "done":
			return p
		case p.Phase == "failed":
			t.Fatalf("job failed: %+v", p)
		case time.Now().After(deadline):
			t.Fatalf("job not done: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommand runs the CLI's rebuild and replay.
func TestCommand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.simulate(t, 41, 10, 300)
	all := e.readAll(t)
	rb := e.rebuilder()

	var out bytes.Buffer
	if err := rebuilder.Command(ctx, rb, []string{"rebuild"}, &out); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	for _, want := range []string{"done", "300 / ~300 events", "namespace " + e.ns(2) + " is live (was " + e.ns(1) + ")"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rebuild output lacks %q:\n%s", want, out.String())
		}
	}
	want := statstest.Reference(e.ns(2), all, fixedNow)
	statstest.AssertModel(t, e.rdb, e.ns(2), want)

	out.Reset()
	if err := rebuilder.Command(ctx, rb, []string{"replay", "--from-position", "150"}, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "done") {
		t.Errorf("replay output lacks done:\n%s", out.String())
	}
	statstest.AssertModel(t, e.rdb, e.ns(2), want)
}

// TestCommandUsage rejects bad command lines before touching anything.
func TestCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"replay"}, "--from-position P (P ≥ 0) is required"},
		{[]string{"replay", "--from-position", "-3"}, "is required"},
		{[]string{"replay", "--from-position", "x"}, "invalid value"},
		{[]string{"replay", "-from-position=5", "extra"}, "unexpected arguments"},
		{[]string{"rebuild", "--from-position", "3"}, "replay flag"},
		{[]string{"rebuild", "--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := rebuilder.Command(context.Background(), nil, tt.args, &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), tt.want) {
			t.Errorf("Command(%q) = %v (output %q), want an error with %q", tt.args, err, out.String(), tt.want)
		}
	}
}
