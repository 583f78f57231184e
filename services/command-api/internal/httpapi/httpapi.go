// Package httpapi is the command API's HTTP port: it turns requests into
// application commands and application errors into RFC 9457 problems.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/domain"
	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/app"
)

// Commands is the application as the HTTP port uses it.
type Commands interface {
	OpenAccount(ctx context.Context, req app.Request, c account.Open) (app.Result, error)
	Deposit(ctx context.Context, req app.Request, c account.DepositFunds) (app.Result, error)
	Withdraw(ctx context.Context, req app.Request, c account.Withdraw) (app.Result, error)
	CloseAccount(ctx context.Context, req app.Request, c account.Close) (app.Result, error)
	ReverseDeposit(ctx context.Context, req app.Request, c account.ReverseDeposit) (app.Result, error)
	PlaceOrder(ctx context.Context, req app.Request, c order.Place) (app.Result, error)
	PayOrder(ctx context.Context, req app.Request, c order.Pay) (app.Result, error)
	ShipOrder(ctx context.Context, req app.Request, c order.Ship) (app.Result, error)
	CancelOrder(ctx context.Context, req app.Request, c order.Cancel) (app.Result, error)
}

// Config tunes the handler.
type Config struct {
	// CommandTimeout bounds one command end to end.
	CommandTimeout time.Duration
	// RetryAfter is what a 503 tells the client to wait.
	RetryAfter time.Duration
}

type handler struct {
	cmds Commands
	log  *slog.Logger
	cfg  Config
}

// NewRouter returns the command routes plus /healthz, /readyz and /metrics.
func NewRouter(cmds Commands, log *slog.Logger, cfg Config, health *httpserver.Health, reg *prometheus.Registry) http.Handler {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 10 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 2 * time.Second
	}
	h := &handler{cmds: cmds, log: log, cfg: cfg}
	r := chi.NewRouter()
	r.Use(httpserver.NewMetrics(reg).Middleware)
	health.Mount(r, reg)
	r.Route("/v1/accounts", func(r chi.Router) {
		r.Post("/", h.openAccount)
		r.Post("/{id}/deposits", h.deposit)
		r.Post("/{id}/withdrawals", h.withdraw)
		r.Post("/{id}/close", h.closeAccount)
		r.Post("/{id}/deposit-reversals", h.reverseDeposit)
	})
	r.Route("/v1/orders", func(r chi.Router) {
		r.Post("/", h.placeOrder)
		r.Post("/{id}/payments", h.payOrder)
		r.Post("/{id}/shipments", h.shipOrder)
		r.Post("/{id}/cancellation", h.cancelOrder)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpserver.Error(w, r, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpserver.Error(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here")
	})
	return r
}

// response is the body of every successful command.
type response struct {
	ID       uuid.UUID `json:"id"`
	Version  int64     `json:"version"`
	Position int64     `json:"position"`
	Status   string    `json:"status,omitempty"`
}

// command runs one command: it decodes the body into B, builds the common
// request from headers, calls run, and writes the result or the problem.
func command[B any](h *handler, w http.ResponseWriter, r *http.Request, create bool,
	run func(ctx context.Context, req app.Request, body B) (app.Result, error)) {
	req, err := h.request(r, create)
	if err != nil {
		httpserver.WriteDecodeError(w, r, err)
		return
	}
	raw, err := readBody(r)
	if err != nil {
		httpserver.WriteDecodeError(w, r, err)
		return
	}
	var body B
	if err := httpserver.DecodeJSON(r, &body); err != nil {
		httpserver.WriteDecodeError(w, r, err)
		return
	}
	if req.IdempotencyKey != "" {
		sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), raw...))
		req.RequestHash = hex.EncodeToString(sum[:])
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.CommandTimeout)
	defer cancel()
	res, err := run(ctx, req, body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+res.ID.String())
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(res.Version, 10)))
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	httpserver.WriteJSON(w, status, response{ID: res.ID, Version: res.Version, Position: res.Position, Status: res.Status})
}

// readBody buffers the (bounded) body so it can be both hashed for
// idempotency and decoded.
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, httpserver.MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, &httpserver.DecodeError{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("body larger than %d bytes", httpserver.MaxBodyBytes)}
		}
		return nil, &httpserver.DecodeError{Status: http.StatusBadRequest, Detail: "read body: " + err.Error()}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return raw, nil
}

// request reads the stream id and the shared headers.
func (h *handler) request(r *http.Request, create bool) (app.Request, error) {
	var req app.Request
	if !create {
		id, err := uuid.Parse(chi.URLParam(r, "id"))
		if err != nil {
			return req, &httpserver.DecodeError{Status: http.StatusNotFound, Detail: fmt.Sprintf("%q is not a valid id (want a UUID)", chi.URLParam(r, "id"))}
		}
		req.StreamID = id
	}
	if im := r.Header.Get("If-Match"); im != "" {
		v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(im, "W/"), `"`), 10, 64)
		if err != nil || v < 0 {
			return req, &httpserver.DecodeError{Status: http.StatusBadRequest, Detail: `If-Match must be a stream version, e.g. "3"`}
		}
		req.IfMatch = &v
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > 200 {
			return req, &httpserver.DecodeError{Status: http.StatusBadRequest, Detail: "Idempotency-Key longer than 200 characters"}
		}
		req.IdempotencyKey = key
	}
	req.Metadata = events.Metadata{
		CorrelationID:  r.Header.Get("X-Correlation-ID"),
		CausationID:    r.Header.Get("X-Causation-ID"),
		IdempotencyKey: req.IdempotencyKey,
		Traceparent:    r.Header.Get("traceparent"),
		Actor:          r.Header.Get("X-Actor"),
	}
	if req.Metadata.CorrelationID == "" {
		req.Metadata.CorrelationID = uuid.NewString()
	}
	return req, nil
}

// writeError maps application errors to statuses.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var verr *domain.ValidationError
	switch {
	case errors.As(err, &verr):
		httpserver.WriteProblem(w, r, httpserver.Problem{Status: http.StatusUnprocessableEntity, Detail: "invalid fields", Errors: verr.Fields})
	case errors.Is(err, domain.ErrNotFound):
		httpserver.Error(w, r, http.StatusNotFound, "no such "+resourceOf(r))
	case errors.Is(err, app.ErrPreconditionFailed):
		httpserver.Error(w, r, http.StatusPreconditionFailed, err.Error())
	case errors.Is(err, app.ErrIdempotencyKeyReused):
		httpserver.Error(w, r, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, domain.ErrRuleViolation):
		httpserver.WriteProblem(w, r, httpserver.Problem{Status: http.StatusConflict, Title: "Business rule violated", Detail: err.Error()})
	case errors.Is(err, eventstore.ErrVersionConflict):
		httpserver.WriteProblem(w, r, httpserver.Problem{Status: http.StatusConflict, Title: "Concurrent write lost", Detail: "another write to this stream won repeatedly; retry"})
	case postgres.Unavailable(err):
		h.log.Warn("dependency unavailable", "path", r.URL.Path, "error", err)
		httpserver.Unavailable(w, r, h.cfg.RetryAfter, "the event store is unavailable; retry later")
	default:
		h.log.Error("command failed", "path", r.URL.Path, "error", err)
		httpserver.Error(w, r, http.StatusInternalServerError, "internal error")
	}
}

func resourceOf(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/v1/orders") {
		return "order"
	}
	return "account"
}
