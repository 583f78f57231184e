// Command projector-orders consumes the order and account events and keeps
// the Postgres read models the query API serves: orders_view (with the
// per-customer order lists), accounts_balance and account_activity.
//
// Without arguments it runs the projector, with POST /admin/rebuild, POST
// /admin/replay?from_position=P and GET /admin/rebuild on HTTP_ADDR.
// `projector-orders rebuild` and `projector-orders replay --from-position P`
// do the same from the command line and exit when done.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/internal/projector"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
	"github.com/escqrs/platform/services/projector-orders/internal/rebuilder"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "projector-orders:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	command, err := rebuild.SubcommandOf(args, rebuilder.Usage)
	if err != nil {
		return err
	}
	var env envconfig.Reader
	cfg := projector.ConfigFromEnv(&env, "projector-orders", ":9101", 2*time.Millisecond)
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := observability.NewLogger("projector-orders", cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The read models live in the event store's database, each with its own
	// migrations table; the migration lock makes concurrent replicas safe.
	if err := ordersdb.Migrate(cfg.DatabaseURL); err != nil {
		return fmt.Errorf("migrate read models: %w", err)
	}
	deps, err := projector.Open(ctx, cfg, observability.NewRegistry())
	if err != nil {
		return err
	}
	defer deps.Close()
	rbPool, err := rebuilder.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer rbPool.Close()
	rb := rebuilder.New(deps.Store, rbPool, log)
	if command != rebuild.CommandServe {
		return rebuilder.Command(ctx, rb, args, os.Stdout)
	}
	log.Info("starting", "group", cfg.GroupID, "http_addr", cfg.HTTPAddr)
	return projector.Run(ctx, cfg, log, deps, ordersmodel.New(deps.Pool), map[string]httpserver.Check{}, rb.Admin(ctx).Mount)
}
