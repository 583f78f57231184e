// Command search-indexer is the projector that keeps the Elasticsearch
// "orders" index (searchdoc) in step with the order events on Kafka. Its
// one-shot commands rebuild the index from the event store and swap it in
// (`search-indexer rebuild`), or replay the store into the live index from a
// position (`search-indexer replay --from-position P`).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/internal/projector"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/config"
	"github.com/escqrs/platform/services/search-indexer/internal/rebuilder"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "search-indexer:", err)
		os.Exit(1)
	}
}

func run() error {
	cmd, err := rebuilder.ParseCommand(os.Args[1:])
	if err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := observability.NewLogger("search-indexer", cfg.Projector.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	es, err := elasticclient.NewClient(cfg.ElasticsearchURL)
	if err != nil {
		return err
	}
	defer es.Stop()
	names := searchmodel.PrefixedNames(cfg.IndexPrefix)
	deps, err := projector.Open(ctx, cfg.Projector, observability.NewRegistry())
	if err != nil {
		return err
	}
	defer deps.Close()

	if cmd.Name != rebuild.CommandServe {
		reb := rebuilder.New(es, rebuild.ProjectionReads{Store: deps.Store}, names, log, rebuilder.Options{Report: rebuild.PrintProgress(os.Stdout)})
		return reb.Execute(ctx, cmd, os.Stdout)
	}
	if err := searchmodel.WaitEnsureIndices(ctx, log, es, names); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while Elasticsearch was still down
		}
		return fmt.Errorf("prepare indices: %w", err)
	}
	model := searchmodel.New(es, names.Alias, names.CheckpointIndex, searchmodel.WithCheckpointEvery(cfg.CheckpointEvery))
	checks := map[string]httpserver.Check{
		"elasticsearch": func(ctx context.Context) error { return elasticclient.Ready(ctx, es) },
	}
	reb := rebuilder.New(es, rebuild.ProjectionReads{Store: deps.Store}, names, log, rebuilder.Options{Report: rebuilder.LogProgress(log, 10*time.Second)})
	admin := rebuild.NewAdmin(ctx, log, reb.Rebuild, reb.Replay)
	// Only orders are indexed, so only the order topic is consumed.
	err = projector.Run(ctx, cfg.Projector, log, deps, model, checks, admin.Mount, events.StreamOrder)
	flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, model.FlushCheckpoint(flushCtx))
}
