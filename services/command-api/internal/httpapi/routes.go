package httpapi

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/domain/account"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/app"
)

type openAccountBody struct {
	Owner               string `json:"owner"`
	InitialBalanceCents int64  `json:"initial_balance_cents"`
	Currency            string `json:"currency"`
}

func (h *handler) openAccount(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, true, func(ctx context.Context, req app.Request, b openAccountBody) (app.Result, error) {
		return h.cmds.OpenAccount(ctx, req, account.Open{Owner: b.Owner, InitialBalanceCents: b.InitialBalanceCents, Currency: b.Currency})
	})
}

type depositBody struct {
	AmountCents int64  `json:"amount_cents"`
	Source      string `json:"source"`
}

func (h *handler) deposit(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b depositBody) (app.Result, error) {
		return h.cmds.Deposit(ctx, req, account.DepositFunds{AmountCents: b.AmountCents, Source: b.Source})
	})
}

type withdrawBody struct {
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason"`
}

func (h *handler) withdraw(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b withdrawBody) (app.Result, error) {
		return h.cmds.Withdraw(ctx, req, account.Withdraw{AmountCents: b.AmountCents, Reason: b.Reason})
	})
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (h *handler) closeAccount(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b reasonBody) (app.Result, error) {
		return h.cmds.CloseAccount(ctx, req, account.Close{Reason: b.Reason})
	})
}

type reverseDepositBody struct {
	DepositVersion int64  `json:"deposit_version"`
	Reason         string `json:"reason"`
}

func (h *handler) reverseDeposit(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b reverseDepositBody) (app.Result, error) {
		return h.cmds.ReverseDeposit(ctx, req, account.ReverseDeposit{DepositVersion: b.DepositVersion, Reason: b.Reason})
	})
}

type placeOrderBody struct {
	CustomerID      uuid.UUID         `json:"customer_id"`
	Items           []events.LineItem `json:"items"`
	Currency        string            `json:"currency"`
	ShippingAddress *events.Address   `json:"shipping_address"`
	TaxCents        int64             `json:"tax_cents"`
}

func (h *handler) placeOrder(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, true, func(ctx context.Context, req app.Request, b placeOrderBody) (app.Result, error) {
		return h.cmds.PlaceOrder(ctx, req, order.Place{CustomerID: b.CustomerID, Items: b.Items, Currency: b.Currency,
			ShippingAddress: b.ShippingAddress, TaxCents: b.TaxCents})
	})
}

type payBody struct {
	AmountCents int64  `json:"amount_cents"`
	Method      string `json:"method"`
}

func (h *handler) payOrder(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b payBody) (app.Result, error) {
		return h.cmds.PayOrder(ctx, req, order.Pay{AmountCents: b.AmountCents, Method: b.Method})
	})
}

type shipBody struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

func (h *handler) shipOrder(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b shipBody) (app.Result, error) {
		return h.cmds.ShipOrder(ctx, req, order.Ship{Carrier: b.Carrier, TrackingNumber: b.TrackingNumber})
	})
}

func (h *handler) cancelOrder(w http.ResponseWriter, r *http.Request) {
	command(h, w, r, false, func(ctx context.Context, req app.Request, b reasonBody) (app.Result, error) {
		return h.cmds.CancelOrder(ctx, req, order.Cancel{Reason: b.Reason})
	})
}
