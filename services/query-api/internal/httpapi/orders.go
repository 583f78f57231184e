package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// getOrder serves GET /v1/orders/{id}: the read model (optionally waiting
// for ?min_version), or with ?at / ?version the state folded from the event
// store as of that point.
func (h *handler) getOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "order")
	if !ok {
		return
	}
	m, ok := h.readMode(w, r)
	if !ok {
		return
	}
	if m.asOf() {
		writeAsOf(h, w, r, "order", id, m, h.Orders.LoadAt, func(s order.State) (model.Order, int64) {
			if s.Status == "" {
				return model.Order{}, 0 // not placed (yet), or the stream is not an order at all
			}
			o := model.OrderFromState(s)
			o.AsOf = asOfInstant(m, s.UpdatedAt)
			return o, o.Version
		})
		return
	}
	o, found, reached, err := readAtLeast(r.Context(), h, m, h.Changes, id,
		func(ctx context.Context) (model.Order, error) { return h.Views.Order(ctx, id) },
		func(o model.Order) int64 { return o.Version })
	if err != nil {
		h.fail(w, r, err, "the orders read model")
		return
	}
	h.writeVersioned(w, r, m, o, o.Version, found, reached, "order")
}

// customerOrders serves GET /v1/customers/{id}/orders, newest first, with
// keyset pagination on (placed_at, order_id).
func (h *handler) customerOrders(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "customer")
	if !ok {
		return
	}
	p := newParams(r)
	limit := p.limit(defaultPage, maxPage)
	after, hasAfter := cursorParam(p, decodeOrderCursor)
	if p.failed(w, r) {
		return
	}
	var afterKey *model.OrderKey
	if hasAfter {
		afterKey = &after
	}
	orders, err := h.Views.CustomerOrders(r.Context(), id, afterKey, limit+1)
	if err != nil {
		h.fail(w, r, err, "the orders read model")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, pageOf(orders, limit, func(last model.Order) string {
		return encodeOrderCursor(model.OrderKey{PlacedAt: last.PlacedAt, OrderID: last.OrderID})
	}))
}

// customerStats serves GET /v1/customers/{id}/stats from Redis; with
// ?order_id and ?min_version, once the stats reflect that version of that
// order (read your writes), else 202 after the wait.
func (h *handler) customerStats(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "customer")
	if !ok {
		return
	}
	p := newParams(r)
	m := readMode{minVersion: p.int64("min_version", 0, 1, maxInt64), wait: p.wait(h.cfg.ReadWait, h.cfg.MaxWait)}
	orderID := p.uuid("order_id")
	if p.has("order_id") != p.has("min_version") {
		p.add("order_id", "order_id and min_version go together: the stats are awaited for a version of one order")
	}
	if p.failed(w, r) {
		return
	}
	if orderID != "" {
		oid := uuid.MustParse(orderID)
		type orderVersion struct {
			customer string
			version  int64
		}
		v, found, reached, err := readAtLeast(r.Context(), h, m, nil, oid, // no feed for Redis: it polls
			func(ctx context.Context) (orderVersion, error) {
				c, v, err := h.Stats.OrderVersion(ctx, oid)
				return orderVersion{c, v}, err
			},
			func(v orderVersion) int64 { return v.version })
		switch {
		case err != nil:
			h.fail(w, r, err, "the stats read model")
			return
		case found && v.customer != id.String():
			httpserver.Error(w, r, http.StatusBadRequest, fmt.Sprintf("order %s is not customer %s's", oid, id))
			return
		case !reached:
			h.writeVersioned(w, r, m, nil, v.version, found, false, "order")
			return
		}
	}
	s, err := h.Stats.CustomerStats(r.Context(), id)
	if errors.Is(err, model.ErrNotFound) {
		httpserver.Error(w, r, http.StatusNotFound, fmt.Sprintf("no statistics for customer %s: it has placed no order", id))
		return
	}
	if err != nil {
		h.fail(w, r, err, "the stats read model")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, s)
}

// topCustomers serves GET /v1/customers/top: the biggest spenders.
func (h *handler) topCustomers(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	limit := p.limit(defaultTop, maxPage)
	if p.failed(w, r) {
		return
	}
	top, err := h.Stats.TopCustomers(r.Context(), limit)
	if err != nil {
		h.fail(w, r, err, "the stats read model")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, map[string]any{"items": top})
}

// orderStatuses are the values ?status= accepts.
var orderStatuses = map[string]bool{
	string(order.StatusPlaced): true, string(order.StatusPaid): true,
	string(order.StatusShipped): true, string(order.StatusCancelled): true,
}
