package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/olivere/elastic/v7"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/httpx"
	"github.com/escqrs/platform/internal/outage"
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
		httpx.Unavailable(w, r, h.cfg.RetryAfter, dependency+" is unavailable; retry later")
	default:
		h.log.Error("query failed", "path", r.URL.Path, "error", err)
		httpx.Error(w, r, http.StatusInternalServerError, "internal error")
	}
}

// unavailable reports whether err means an engine could not be reached,
// did not answer in time, or has no read model yet, as opposed to a bug.
func unavailable(err error) bool {
	var (
		pgErr *pgconn.PgError
		esErr *elastic.Error
	)
	switch {
	case outage.Postgres(err), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed), errors.Is(err, elastic.ErrNoClient):
		return true
	case errors.As(err, &pgErr):
		// 42P01: the projector has not created its tables yet.
		return pgErr.Code == "42P01"
	case errors.As(err, &esErr):
		return esErr.Status == http.StatusServiceUnavailable || esErr.Status == http.StatusTooManyRequests ||
			esErr.Status == http.StatusGatewayTimeout || esErr.Status == http.StatusRequestTimeout
	}
	return false
}
