// Command projector-stats consumes the order and account topics into the
// Redis stats read model: per-customer order statistics, a live balance
// cache and a top-customers sorted set (layout: internal/readmodel/statskeys).
//
// Without arguments it runs the projector, with POST /admin/rebuild, POST
// /admin/replay?from_position=P and GET /admin/rebuild on HTTP_ADDR.
// `projector-stats rebuild` and `projector-stats replay --from-position P`
// do the same from the command line and exit when done.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/internal/projector"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/services/projector-stats/internal/config"
	"github.com/escqrs/platform/services/projector-stats/internal/rebuilder"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "projector-stats:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	command, err := rebuild.SubcommandOf(args, rebuilder.Usage)
	if err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	redisOpts, err := cfg.RedisOptions()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := observability.NewLogger("projector-stats", cfg.Projector.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := observability.NewRegistry()
	deps, err := projector.Open(ctx, cfg.Projector, reg)
	if err != nil {
		return err
	}
	defer deps.Close()
	rdb := redis.NewClient(redisOpts)
	defer rdb.Close()
	rb := rebuilder.New(rebuild.ProjectionReads{Store: deps.Store}, rdb, cfg.KeyPrefix, log)
	if command != rebuild.CommandServe {
		return rebuilder.Command(ctx, rb, args, os.Stdout)
	}

	// projection_lag_events is exported by the query API, which sees every
	// projection; this process reports its consumer lag.
	model := statsmodel.New(rdb, statsmodel.ActiveNamespaceAt(statskeys.Prefixed(cfg.KeyPrefix)))

	checks := map[string]httpserver.Check{"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}
	log.Info("projector-stats starting", "http_addr", cfg.Projector.HTTPAddr, "redis", redisOpts.Addr)
	return projector.Run(ctx, cfg.Projector, log, deps, model, checks, rb.Admin(ctx).Mount)
}
