package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/internal/platform/redisclient"
)

// fail writes err as a problem: 503 with Retry-After when the dependency is
// down or slow (the client should retry), 500 for anything else (a bug).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, dependency string) {
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		h.log.Debug("request cancelled", "path", r.URL.Path)
	case unavailable(err):
		h.log.Warn("dependency unavailable", "path", r.URL.Path, "dependency", dependency, "error", err)
		httpserver.Unavailable(w, r, h.cfg.RetryAfter, dependency+" is unavailable; retry later")
	default:
		h.log.Error("query failed", "path", r.URL.Path, "error", err)
		httpserver.Error(w, r, http.StatusInternalServerError, "internal error")
	}
}

// unavailable reports whether err means an engine could not be reached,
// did not answer in time, or has no read model yet, as opposed to a bug.
func unavailable(err error) bool {
	return postgres.Unavailable(err) || postgres.UndefinedTable(err) ||
		redisclient.Unavailable(err) || elasticclient.Unavailable(err)
}
