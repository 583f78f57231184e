package httpapi

import (
	"net/http"
	"strings"

	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// maxQueryText bounds ?q; longer strings are abuse, not searches.
const maxQueryText = 500

// searchPage is the body of GET /v1/search/orders.
type searchPage struct {
	Items      []model.Order `json:"items"`
	NextCursor *string       `json:"next_cursor"`
	Total      int64         `json:"total"`
}

// parseSearch validates every search parameter, collecting all errors.
func parseSearch(p *params) model.SearchQuery {
	q := model.SearchQuery{
		Text:       strings.TrimSpace(p.q.Get("q")),
		Status:     p.q.Get("status"),
		CustomerID: p.uuid("customer_id"),
		From:       p.time("from"),
		To:         p.time("to"),
		Limit:      p.limit(defaultPage, maxPage),
	}
	if len(q.Text) > maxQueryText {
		p.add("q", "must be at most 500 characters")
	}
	if q.Status != "" && !orderStatuses[q.Status] {
		p.add("status", "must be one of placed, paid, shipped, cancelled")
		q.Status = ""
	}
	if p.has("min_total_cents") {
		n := p.int64("min_total_cents", -1, 0, maxInt64)
		if n >= 0 {
			q.MinTotalCents = &n
		}
	}
	if p.has("max_total_cents") {
		n := p.int64("max_total_cents", -1, 0, maxInt64)
		if n >= 0 {
			q.MaxTotalCents = &n
		}
	}
	if q.MinTotalCents != nil && q.MaxTotalCents != nil && *q.MinTotalCents > *q.MaxTotalCents {
		p.add("max_total_cents", "must not be below min_total_cents")
	}
	if q.From != nil && q.To != nil && q.From.After(*q.To) {
		p.add("to", "must not be before from")
	}
	if after, ok := cursorParam(p, decodeSearchCursor); ok {
		q.After = after
	}
	return q
}

// searchOrders serves GET /v1/search/orders: full text over item names and
// SKUs, exact filters, newest first, search_after pagination.
func (h *handler) searchOrders(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	q := parseSearch(p)
	if p.failed(w, r) {
		return
	}
	res, err := h.Search.Search(r.Context(), q)
	if err != nil {
		h.fail(w, r, err, "the search index")
		return
	}
	out := searchPage{Items: res.Items, Total: res.Total}
	if res.Next != nil {
		next, err := encodeSearchCursor(res.Next)
		if err != nil {
			h.fail(w, r, err, "the search index")
			return
		}
		out.NextCursor = &next
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}
