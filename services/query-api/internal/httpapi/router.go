// Package httpapi is the query API's HTTP port: it turns GET requests into
// reads of the read models and the event store, and failures into RFC 9457
// problems.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/model"
	"github.com/escqrs/platform/services/query-api/internal/projections"
)

// Views is projector-orders' Postgres model as the handlers read it.
type Views interface {
	Order(ctx context.Context, id uuid.UUID) (model.Order, error)
	CustomerOrders(ctx context.Context, customerID uuid.UUID, after *model.OrderKey, limit int) ([]model.Order, error)
	Account(ctx context.Context, id uuid.UUID) (model.Account, error)
	AccountsByBalance(ctx context.Context, minCents int64, after *model.BalanceKey, limit int) ([]model.Account, error)
	AccountActivity(ctx context.Context, id uuid.UUID, beforeVersion int64, limit int) ([]model.Activity, error)
}

// Stats is projector-stats' Redis model.
type Stats interface {
	CustomerStats(ctx context.Context, customerID uuid.UUID) (model.CustomerStats, error)
	OrderVersion(ctx context.Context, orderID uuid.UUID) (customerID string, version int64, err error)
	TopCustomers(ctx context.Context, limit int) ([]model.TopCustomer, error)
}

// Search is search-indexer's Elasticsearch model.
type Search interface {
	Search(ctx context.Context, q model.SearchQuery) (model.SearchResult, error)
}

// EventLog is the event store, read-only.
type EventLog interface {
	ReadStream(ctx context.Context, streamID uuid.UUID, afterVersion int64, limit int) ([]events.Envelope, error)
}

// OrderLoader folds an order stream up to a version and an instant.
type OrderLoader interface {
	LoadAt(ctx context.Context, id uuid.UUID, untilVersion int64, at time.Time) (order.State, error)
}

// AccountLoader folds an account stream up to a version and an instant.
type AccountLoader interface {
	LoadAt(ctx context.Context, id uuid.UUID, untilVersion int64, at time.Time) (account.State, error)
}

// Projections reports every projection's progress.
type Projections interface {
	Report(ctx context.Context) (projections.Report, error)
}

// Changes announces changes of read-model rows by stream id
// (changefeed.Feed): a ?min_version read waits on it between its reads.
type Changes interface {
	Watch(id uuid.UUID) (changed <-chan struct{}, stop func())
	Live() bool
}

// Deps are the sources the handlers read.
type Deps struct {
	Views       Views
	Stats       Stats
	Search      Search
	Events      EventLog
	Orders      OrderLoader
	Accounts    AccountLoader
	Projections Projections
	// Changes announces changes of projector-orders' rows. It may be nil:
	// ?min_version reads then poll.
	Changes Changes
}

// Config tunes the handlers.
type Config struct {
	// ReadWait is the default wait of a ?min_version read.
	ReadWait time.Duration
	// MaxWait caps ?wait=.
	MaxWait time.Duration
	// PollInterval is how often a ?min_version read re-reads the model
	// while no change feed tells it when to.
	PollInterval time.Duration
	// RecheckInterval is how often it re-reads while the change feed is up,
	// in case a change went unannounced (a rebuild's rows).
	RecheckInterval time.Duration
	// RetryAfter is what a 202 or 503 tells the client to wait.
	RetryAfter time.Duration
}

type handler struct {
	Deps
	cfg Config
	log *slog.Logger
}

// Page sizes.
const (
	defaultPage    = 20
	maxPage        = 100
	defaultHistory = 100
	maxHistory     = 1000
	defaultTop     = 10
)

// NewRouter returns the query routes plus /healthz, /readyz and /metrics.
// Every route is a GET; unknown routes and methods get problem responses.
func NewRouter(deps Deps, cfg Config, log *slog.Logger, health *httpserver.Health, reg *prometheus.Registry) http.Handler {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = 250 * time.Millisecond
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	h := &handler{Deps: deps, cfg: cfg, log: log}
	r := chi.NewRouter()
	r.Use(httpserver.NewMetrics(reg).Middleware)
	health.Mount(r, reg)
	r.Get("/v1/orders/{id}", h.getOrder)
	r.Get("/v1/orders/{id}/history", h.history(events.StreamOrder))
	r.Get("/v1/customers/top", h.topCustomers)
	r.Get("/v1/customers/{id}/orders", h.customerOrders)
	r.Get("/v1/customers/{id}/stats", h.customerStats)
	r.Get("/v1/accounts", h.accountsByBalance)
	r.Get("/v1/accounts/{id}", h.getAccount)
	r.Get("/v1/accounts/{id}/activity", h.accountActivity)
	r.Get("/v1/accounts/{id}/history", h.history(events.StreamAccount))
	r.Get("/v1/search/orders", h.searchOrders)
	r.Get("/v1/projections", h.projections)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpserver.Error(w, r, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		httpserver.Error(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here: the query API only reads")
	})
	return r
}

// page is the body of every list endpoint.
type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// pageOf makes a page of rows read with limit+1: the first limit of them
// and, when there was one more, the cursor after the last one kept.
func pageOf[T any](rows []T, limit int, cursorAfter func(last T) string) page[T] {
	if len(rows) <= limit {
		return page[T]{Items: rows}
	}
	next := cursorAfter(rows[limit-1])
	return page[T]{Items: rows[:limit], NextCursor: &next}
}

func (h *handler) projections(w http.ResponseWriter, r *http.Request) {
	rep, err := h.Projections.Report(r.Context())
	if err != nil {
		h.fail(w, r, err, "the event store")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, rep)
}
