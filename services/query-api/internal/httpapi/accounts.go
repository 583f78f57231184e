package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// getAccount serves GET /v1/accounts/{id} like getOrder serves orders.
func (h *handler) getAccount(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "account")
	if !ok {
		return
	}
	m, ok := h.readMode(w, r)
	if !ok {
		return
	}
	if m.asOf() {
		writeAsOf(h, w, r, "account", id, m, h.Accounts.LoadAt, func(s account.State) (model.Account, int64) {
			if s.Status == "" {
				return model.Account{}, 0 // not opened (yet), or the stream is not an account at all
			}
			a := model.AccountFromState(s)
			a.AsOf = asOfInstant(m, s.UpdatedAt)
			return a, a.Version
		})
		return
	}
	a, found, reached, err := readAtLeast(r.Context(), h, m, h.Changes, id,
		func(ctx context.Context) (model.Account, error) { return h.Views.Account(ctx, id) },
		func(a model.Account) int64 { return a.Version })
	if err != nil {
		h.fail(w, r, err, "the accounts read model")
		return
	}
	h.writeVersioned(w, r, m, a, a.Version, found, reached, "account")
}

// accountActivity serves GET /v1/accounts/{id}/activity, newest first, with
// keyset pagination on the stream version.
func (h *handler) accountActivity(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "account")
	if !ok {
		return
	}
	p := newParams(r)
	limit := p.limit(defaultPage, maxPage)
	before, _ := cursorParam(p, decodeVersionCursor)
	if p.failed(w, r) {
		return
	}
	rows, err := h.Views.AccountActivity(r.Context(), id, before, limit+1)
	if errors.Is(err, model.ErrNotFound) {
		httpserver.Error(w, r, http.StatusNotFound, "no such account")
		return
	}
	if err != nil {
		h.fail(w, r, err, "the accounts read model")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, pageOf(rows, limit, func(last model.Activity) string { return encodeVersionCursor(last.Version) }))
}

// accountsByBalance serves GET /v1/accounts?min_balance_cents=N: accounts
// holding at least N, richest first, ties by account id.
func (h *handler) accountsByBalance(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	if !p.has("min_balance_cents") {
		p.add("min_balance_cents", "is required")
	}
	minCents := p.int64("min_balance_cents", 0, minInt64, maxInt64)
	limit := p.limit(defaultPage, maxPage)
	after, hasAfter := cursorParam(p, decodeBalanceCursor)
	if p.failed(w, r) {
		return
	}
	var afterKey *model.BalanceKey
	if hasAfter {
		afterKey = &after
	}
	accounts, err := h.Views.AccountsByBalance(r.Context(), minCents, afterKey, limit+1)
	if err != nil {
		h.fail(w, r, err, "the accounts read model")
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, pageOf(accounts, limit, func(last model.Account) string {
		return encodeBalanceCursor(model.BalanceKey{BalanceCents: last.BalanceCents, AccountID: last.AccountID})
	}))
}
