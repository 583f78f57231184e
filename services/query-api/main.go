// Command query-api serves the read side: the projectors' read models
// (Postgres, Redis, Elasticsearch), and history and as-of state from the
// event store.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/services/query-api/internal/config"
	"github.com/escqrs/platform/services/query-api/internal/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "query-api:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := observability.NewLogger("query-api", cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
