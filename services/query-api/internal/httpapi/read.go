package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// readMode is what a GET of one order or account asked for.
type readMode struct {
	// at and version select a past state from the event store.
	at      *time.Time
	version int64
	// minVersion makes a read-model answer wait until the model reflects it.
	minVersion int64
	wait       time.Duration
}

func (m readMode) asOf() bool { return m.at != nil || m.version > 0 }

func (h *handler) readMode(w http.ResponseWriter, r *http.Request) (readMode, bool) {
	p := newParams(r)
	m := readMode{
		at:         p.time("at"),
		version:    p.int64("version", 0, 1, maxInt64),
		minVersion: p.int64("min_version", 0, 1, maxInt64),
		wait:       p.wait(h.cfg.ReadWait, h.cfg.MaxWait),
	}
	for _, name := range []string{"min_version", "wait"} {
		if p.has(name) && (p.has("at") || p.has("version")) {
			p.add(name, "cannot be combined with at or version: a past state comes from the event store and never waits")
		}
	}
	if p.failed(w, r) {
		return m, false
	}
	return m, true
}

// pending is the 202 body of a read that waited for a version in vain.
type pending struct {
	Status     string `json:"status"`
	Version    int64  `json:"version"`
	MinVersion int64  `json:"min_version"`
}

// readAtLeast loads a versioned entity from a read model until it exists
// at minVersion or later, or wait has passed. Without minVersion it reads
// once. While it waits it re-reads when changes (nil: none) announces a
// change of stream id, and every poll interval in case it missed one:
// PollInterval while there is no feed or it is down, RecheckInterval while
// it is up. found says whether the entity exists at all; reached whether it
// is at minVersion.
func readAtLeast[T any](ctx context.Context, h *handler, m readMode, changes Changes, id uuid.UUID,
	load func(context.Context) (T, error), version func(T) int64) (v T, found, reached bool, err error) {
	deadline := time.Now().Add(m.wait)
	var changed <-chan struct{}
	if m.minVersion > 0 && changes != nil {
		var stop func()
		changed, stop = changes.Watch(id) // before the first read: a change after it wakes us
		defer stop()
	}
	for {
		v, err = load(ctx)
		found = err == nil
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			return v, false, false, err
		}
		if m.minVersion == 0 || (found && version(v) >= m.minVersion) {
			return v, found, true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return v, found, false, nil
		}
		poll := h.cfg.PollInterval
		if changed != nil && changes.Live() {
			poll = h.cfg.RecheckInterval
		}
		t := time.NewTimer(min(poll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return v, found, false, ctx.Err()
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// writeVersioned writes a current read-model answer: 202 when it is short of
// the requested version, 404 when absent, 304 when the client's ETag
// matches, else 200 with the version as ETag.
func (h *handler) writeVersioned(w http.ResponseWriter, r *http.Request, m readMode, body any, version int64,
	found, reached bool, what string) {
	switch {
	case !reached:
		current := int64(0)
		if found {
			current = version
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(h.cfg.RetryAfter.Seconds()))))
		httpserver.WriteJSON(w, http.StatusAccepted, pending{Status: "pending", Version: current, MinVersion: m.minVersion})
	case !found:
		httpserver.Error(w, r, http.StatusNotFound, "no such "+what)
	default:
		etag := strconv.Quote(strconv.FormatInt(version, 10))
		w.Header().Set("ETag", etag)
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, body)
	}
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// writeAsOf answers an as-of read (?at, ?version) of the aggregate what/id
// from the event store: load folds the stream up to that point, and view
// turns the state into the response and its version (0: the aggregate did
// not exist then).
func writeAsOf[S, V any](h *handler, w http.ResponseWriter, r *http.Request, what string, id uuid.UUID, m readMode,
	load func(ctx context.Context, id uuid.UUID, untilVersion int64, at time.Time) (S, error),
	view func(S) (V, int64)) {
	state, err := load(r.Context(), id, m.version, timeOrZero(m.at))
	if err != nil {
		h.fail(w, r, err, "the event store")
		return
	}
	body, version := view(state)
	if detail := asOfMissing(what, id.String(), m, version); detail != "" {
		httpserver.Error(w, r, http.StatusNotFound, detail)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(version, 10)))
	httpserver.WriteJSON(w, http.StatusOK, body)
}

// asOfMissing explains a 404 of an as-of read; "" when the state exists at
// the requested point.
func asOfMissing(what, id string, m readMode, stateVersion int64) string {
	switch {
	case stateVersion == 0 && m.at != nil:
		return fmt.Sprintf("%s %s did not exist at %s: no event of it was recorded at or before that instant",
			what, id, m.at.Format(time.RFC3339Nano))
	case stateVersion == 0:
		return fmt.Sprintf("no such %s", what)
	case m.version > 0 && stateVersion < m.version && m.at != nil:
		return fmt.Sprintf("%s %s was at version %d at %s, short of version %d",
			what, id, stateVersion, m.at.Format(time.RFC3339Nano), m.version)
	case m.version > 0 && stateVersion < m.version:
		return fmt.Sprintf("%s %s has no version %d: its latest version is %d", what, id, m.version, stateVersion)
	}
	return ""
}

// asOfInstant is the instant an as-of answer describes: the one asked for,
// or, for ?version alone, when that version was recorded.
func asOfInstant(m readMode, updatedAt time.Time) *time.Time {
	if m.at != nil {
		t := *m.at
		return &t
	}
	t := updatedAt.UTC()
	return &t
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
