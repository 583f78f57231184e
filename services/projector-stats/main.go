// Command projector-stats consumes the order and account topics into the
// Redis stats read model: per-customer order statistics, a live balance
// cache and a top-customers sorted set (layout: internal/readmodel/statskeys).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/httpx"
	"github.com/escqrs/platform/internal/obs"
	"github.com/escqrs/platform/internal/projector"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/services/projector-stats/internal/config"
	"github.com/escqrs/platform/services/projector-stats/internal/statsmodel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "projector-stats:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	redisOpts, err := cfg.RedisOptions()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := obs.NewLogger("projector-stats", cfg.Projector.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := obs.NewRegistry()
	deps, err := projector.Open(ctx, cfg.Projector, reg)
	if err != nil {
		return err
	}
	defer deps.Close()
	rdb := redis.NewClient(redisOpts)
	defer rdb.Close()

	// projection_lag_events is exported by the query API, which sees every
	// projection; this process reports its consumer lag.
	model := statsmodel.New(rdb, statsmodel.ActiveNamespaceAt(statskeys.Prefixed(cfg.KeyPrefix)))

	checks := map[string]httpx.Check{"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}
	log.Info("projector-stats starting", "http_addr", cfg.Projector.HTTPAddr, "redis", redisOpts.Addr)
	return projector.Run(ctx, cfg.Projector, log, deps, model, checks, nil)
}
