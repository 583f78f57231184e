package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain"
	"github.com/escqrs/platform/internal/platform/httpserver"
)

// params reads query parameters and collects every invalid one, so a client
// learns about all its mistakes from one 400.
type params struct {
	q    url.Values
	errs []domain.FieldError
}

func newParams(r *http.Request) *params { return &params{q: r.URL.Query()} }

func (p *params) add(field, msg string) {
	p.errs = append(p.errs, domain.FieldError{Field: field, Message: msg})
}

func (p *params) has(name string) bool { return p.q.Get(name) != "" }

// int64 parses name within [lo, hi]; absent is def.
func (p *params) int64(name string, def, lo, hi int64) int64 {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.add(name, rangeMessage(lo, hi))
		return def
	}
	return n
}

func rangeMessage(lo, hi int64) string {
	switch {
	case lo == minInt64 && hi == maxInt64:
		return "must be an integer"
	case hi == maxInt64:
		return fmt.Sprintf("must be an integer of at least %d", lo)
	}
	return fmt.Sprintf("must be an integer from %d to %d", lo, hi)
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// limit is the page size: def when absent, 1..max otherwise.
func (p *params) limit(def, max int) int { return int(p.int64("limit", int64(def), 1, int64(max))) }

// time parses an RFC 3339 instant; nil when absent.
func (p *params) time(name string) *time.Time {
	v := p.q.Get(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.add(name, "must be an RFC 3339 instant, e.g. 2026-01-02T15:04:05Z (URL-encode a '+' offset as %2B)")
		return nil
	}
	t = t.UTC()
	return &t
}

// uuid parses a UUID; "" when absent.
func (p *params) uuid(name string) string {
	v := p.q.Get(name)
	if v == "" {
		return ""
	}
	id, err := uuid.Parse(v)
	if err != nil {
		p.add(name, "must be a UUID")
		return ""
	}
	return id.String()
}

// wait is how long a ?min_version read may wait: ?wait= (a Go duration such
// as 500ms or 3s) capped at max, or def.
func (p *params) wait(def, max time.Duration) time.Duration {
	v := p.q.Get("wait")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.add("wait", "must be a non-negative duration, e.g. 500ms or 3s")
		return def
	}
	return min(d, max)
}

// cursor decodes the opaque cursor with dec; the zero T when absent.
func cursorParam[T any](p *params, dec func(string) (T, error)) (T, bool) {
	var zero T
	v := p.q.Get("cursor")
	if v == "" {
		return zero, false
	}
	c, err := dec(v)
	if err != nil {
		p.add("cursor", "is not a cursor this endpoint issued: pass next_cursor from the previous page unchanged")
		return zero, false
	}
	return c, true
}

// failed writes the collected errors as a 400 and reports whether there were any.
func (p *params) failed(w http.ResponseWriter, r *http.Request) bool {
	if len(p.errs) == 0 {
		return false
	}
	names := make([]string, len(p.errs))
	for i, e := range p.errs {
		names[i] = e.Field
	}
	httpserver.WriteProblem(w, r, httpserver.Problem{Status: http.StatusBadRequest, Title: "Invalid query parameters",
		Detail: "invalid query parameters: " + strings.Join(names, ", "), Errors: p.errs})
	return true
}

// pathID parses the {id} path parameter, writing a 400 that names it when
// it is not a UUID.
func pathID(w http.ResponseWriter, r *http.Request, what string) (uuid.UUID, bool) {
	raw := chi.URLParam(r, "id")
	id, err := uuid.Parse(raw)
	if err != nil {
		httpserver.WriteProblem(w, r, httpserver.Problem{Status: http.StatusBadRequest, Title: "Invalid path parameter",
			Detail: fmt.Sprintf("path parameter id: %q is not a valid %s id (want a UUID)", raw, what),
			Errors: []domain.FieldError{{Field: "id", Message: "must be a UUID"}}})
		return uuid.Nil, false
	}
	return id, true
}
