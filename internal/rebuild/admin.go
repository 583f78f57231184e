package rebuild

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/escqrs/platform/internal/platform/httpserver"
)

// Admin runs rebuilds and replays for one projector, one at a time, in the
// background of the projector process, and serves their progress.
type Admin struct {
	ctx     context.Context // the process lifetime: a rebuild stops with the process
	log     *slog.Logger
	tracker *Tracker
	mu      sync.Mutex
	rebuild func(ctx context.Context, tr *Tracker) error
	replay  func(ctx context.Context, from int64, tr *Tracker) error
}

// NewAdmin returns an Admin whose jobs run under ctx.
func NewAdmin(ctx context.Context, log *slog.Logger, rebuild func(ctx context.Context, tr *Tracker) error,
	replay func(ctx context.Context, from int64, tr *Tracker) error) *Admin {
	return &Admin{ctx: ctx, log: log, tracker: &Tracker{}, rebuild: rebuild, replay: replay}
}

// Mount adds POST /admin/rebuild, POST /admin/replay?from_position=P and
// GET /admin/rebuild (progress) to r.
func (a *Admin) Mount(r chi.Router) {
	r.Post("/admin/rebuild", func(w http.ResponseWriter, r *http.Request) {
		a.start(w, r, "rebuild", func(ctx context.Context) error { return a.rebuild(ctx, a.tracker) })
	})
	r.Post("/admin/replay", func(w http.ResponseWriter, r *http.Request) {
		from, err := strconv.ParseInt(r.URL.Query().Get("from_position"), 10, 64)
		if err != nil || from < 0 {
			httpserver.Error(w, r, http.StatusBadRequest, "from_position must be a non-negative integer")
			return
		}
		a.start(w, r, "replay", func(ctx context.Context) error { return a.replay(ctx, from, a.tracker) })
	})
	r.Get("/admin/rebuild", func(w http.ResponseWriter, _ *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, a.tracker.Get())
	})
}

func (a *Admin) start(w http.ResponseWriter, r *http.Request, what string, job func(context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tracker.Running() {
		httpserver.Error(w, r, http.StatusConflict, "a rebuild or replay is already running; GET /admin/rebuild shows its progress")
		return
	}
	a.tracker.update(func(p *Progress) { *p = Progress{Phase: "starting"} })
	go func() {
		a.log.Info(what + " started")
		if err := job(a.ctx); err != nil {
			a.log.Error(what+" failed", "error", err)
			return
		}
		p := a.tracker.Get()
		a.log.Info(what+" finished", "events", p.Events, "events_per_second", p.EventsPerSec)
	}()
	w.Header().Set("Location", "/admin/rebuild")
	httpserver.WriteJSON(w, http.StatusAccepted, map[string]string{"status": what + " started", "progress": "/admin/rebuild"})
}

// PrintProgress writes one human line per report, for the CLI.
func PrintProgress(w io.Writer) func(Progress) {
	return func(p Progress) {
		eta := "-"
		if p.ETASeconds > 0 {
			eta = fmt.Sprintf("%.0fs", p.ETASeconds)
		}
		fmt.Fprintf(w, "%-12s %10d / ~%d events  position %-10d %8.0f events/s  ETA %s\n",
			p.Phase, p.Events, p.Total, p.Position, p.EventsPerSec, eta)
	}
}
