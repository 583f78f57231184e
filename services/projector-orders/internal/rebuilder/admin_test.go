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
	"github.com/escqrs/platform/services/projector-orders/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-orders/internal/workload"
)

// TestAdminEndpoint drives a rebuild and a replay through the admin routes
// a projector process mounts: 202 to start, 409 while one runs, progress on
// GET, "done" at the end with every event counted.
func TestAdminEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	e.copyHistory(t, workload.New(17), 1200)
	// The rebuild waits after Prepare until the test has seen it running.
	gate := &gatedStore{Store: e.store, open: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := chi.NewRouter()
	rebuilder.New(gate, e.pool, quiet()).Admin(ctx).Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	post := func(path string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	progress := func() rebuild.Progress {
		t.Helper()
		resp, err := http.Get(srv.URL + "/admin/rebuild")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p rebuild.Progress
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/rebuild: %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitDone := func() rebuild.Progress {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			p := progress()
			if p.Phase == "done" || p.Phase == "failed" {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %+v", p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if code := post("/admin/rebuild"); code != http.StatusAccepted {
		t.Fatalf("POST /admin/rebuild: %d, want 202", code)
	}
	<-gate.entered
	if p := progress(); p.Phase != "filling" || p.StartedAt.IsZero() {
		t.Fatalf("progress while running: %+v", p)
	}
	if code := post("/admin/rebuild"); code != http.StatusConflict {
		t.Fatalf("second POST /admin/rebuild: %d, want 409", code)
	}
	if code := post("/admin/replay?from_position=0"); code != http.StatusConflict {
		t.Fatalf("POST /admin/replay while rebuilding: %d, want 409", code)
	}
	close(gate.open)
	if p := waitDone(); p.Phase != "done" || p.Events != 1200 || p.Total != 1200 || p.Error != "" || p.SwappedAt.IsZero() {
		t.Fatalf("after the rebuild: %+v, want done with 1200 events", p)
	}
	e.assertModel(t)
	e.assertSchema(t)

	if code := post("/admin/replay?from_position=x"); code != http.StatusBadRequest {
		t.Fatalf("POST /admin/replay?from_position=x: %d, want 400", code)
	}
	if code := post("/admin/replay?from_position=1000"); code != http.StatusAccepted {
		t.Fatalf("POST /admin/replay: %d, want 202", code)
	}
	if p := waitDone(); p.Phase != "done" || p.FromPosition != 1000 || p.Total != 200 || p.Error != "" {
		t.Fatalf("after the replay: %+v, want done from 1000 with 200 events after it", p)
	}
	e.assertModel(t)
}

// TestCommand runs the CLI subcommands as `projector-orders rebuild` and
// `projector-orders replay --from-position P` do.
func TestCommand(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.copyHistory(t, workload.New(19), 900)
	rb := rebuilder.New(e.store, e.pool, quiet())
	var out bytes.Buffer
	if err := rebuilder.Command(ctx, rb, []string{"rebuild"}, &out); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	// The last progress line and the summary.
	if s := out.String(); !strings.Contains(s, "done") || !strings.Contains(s, "from 900 events up to position 900") {
		t.Fatalf("rebuild printed:\n%s", s)
	}
	e.assertModel(t)
	out.Reset()
	if err := rebuilder.Command(ctx, rb, []string{"replay", "--from-position", "850"}, &out); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "replayed 50 events after position 850 (read 900)") {
		t.Fatalf("replay printed:\n%s", s)
	}
	for _, args := range [][]string{{"replay"}, {"rebuild", "--from-position", "3"}, {"rebuild", "extra"}, {"bogus"}, {}} {
		if err := rebuilder.Command(ctx, rb, args, &out); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
