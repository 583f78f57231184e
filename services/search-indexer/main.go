// Command search-indexer is the projector that keeps the Elasticsearch
// "orders" index (searchdoc) in step with the order events on Kafka.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/escqrs/platform/internal/httpx"
	"github.com/escqrs/platform/internal/obs"
	"github.com/escqrs/platform/internal/projector"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/config"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "search-indexer:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := obs.NewLogger("search-indexer", cfg.Projector.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	es, err := searchmodel.NewClient(cfg.ElasticsearchURL)
	if err != nil {
		return err
	}
	defer es.Stop()
	names := searchmodel.PrefixedNames(cfg.IndexPrefix)
	if err := searchmodel.WaitEnsureIndices(ctx, log, es, names); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while Elasticsearch was still down
		}
		return fmt.Errorf("prepare indices: %w", err)
	}
	deps, err := projector.Open(ctx, cfg.Projector, obs.NewRegistry())
	if err != nil {
		return err
	}
	defer deps.Close()
	model := searchmodel.New(es, names.Alias, names.CheckpointIndex)
	checks := map[string]httpx.Check{
		"elasticsearch": func(ctx context.Context) error { return searchmodel.Ready(ctx, es) },
	}
	// Only orders are indexed, so only the order topic is consumed.
	return projector.Run(ctx, cfg.Projector, log, deps, model, checks, nil, events.StreamOrder)
}
