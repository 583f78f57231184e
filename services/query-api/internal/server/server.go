// Package server wires the query API: Postgres pools (event store and read
// models), Redis, Elasticsearch, the readers, the projection monitor, the
// change feed and the HTTP routes.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/internal/readmodel/ordersdb"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/query-api/internal/changefeed"
	"github.com/escqrs/platform/services/query-api/internal/config"
	"github.com/escqrs/platform/services/query-api/internal/httpapi"
	"github.com/escqrs/platform/services/query-api/internal/model"
	"github.com/escqrs/platform/services/query-api/internal/pgread"
	"github.com/escqrs/platform/services/query-api/internal/projections"
	"github.com/escqrs/platform/services/query-api/internal/searchread"
	"github.com/escqrs/platform/services/query-api/internal/statsread"
)

// Server is a wired query API.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	pools    []*pgxpool.Pool
	rdb      *redis.Client
	es       *elastic.Client
	health   *httpserver.Health
	monitor  *projections.Monitor
	handler  http.Handler
	registry *prometheus.Registry
	close    sync.Once
	// stopFeed ends the change feed's goroutine and waits for it.
	stopFeed func()
}

// New connects (lazily: no engine needs to be up yet) and wires the
// service. The query API owns no schema, so it applies no migrations: the
// event store's belong to the command API, the read models' to their
// projectors. Until a model exists its endpoints answer 503.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, registry: observability.NewRegistry()}
	storePool, err := s.openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	viewPool := storePool
	if cfg.ReadModelDatabaseURL != cfg.DatabaseURL {
		if viewPool, err = s.openPool(ctx, cfg.ReadModelDatabaseURL); err != nil {
			s.Close()
			return nil, fmt.Errorf("read models: %w", err)
		}
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	s.rdb = redis.NewClient(ropts)
	// No sniffing (the node list is what we were given, as behind a load
	// balancer) and no background health checks: readiness asks instead.
	s.es, err = elastic.NewClient(elastic.SetURL(cfg.ElasticsearchURL), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}

	store := eventstore.New(storePool)
	aggMetrics := aggregate.NewMetrics(s.registry)
	views := pgread.New(viewPool)
	stats := statsread.NewWithDefault(s.rdb, cfg.StatsNamespaceKey, cfg.StatsDefaultNamespace)
	search := searchread.New(s.es, cfg.SearchAlias, cfg.SearchCheckpointIndex)
	s.monitor = projections.NewMonitor(store, []projections.Source{
		{Name: ordersdb.Projection, Checkpoint: func(ctx context.Context) (model.Checkpoint, error) {
			return views.Checkpoint(ctx, ordersdb.Projection)
		}},
		{Name: statskeys.Projection, Checkpoint: stats.Checkpoint},
		{Name: searchdoc.Projection, Checkpoint: search.Checkpoint, StreamTypes: []events.StreamType{events.StreamOrder}},
	}, 2*time.Second, s.registry, log)

	checks := map[string]httpserver.Check{
		"postgres":      func(ctx context.Context) error { return storePool.Ping(ctx) },
		"redis":         func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() },
		"elasticsearch": search.Ping,
	}
	if viewPool != storePool {
		checks["postgres_read_models"] = func(ctx context.Context) error { return viewPool.Ping(ctx) }
	}
	s.health = httpserver.NewHealth(checks)
	feed := s.startFeed(viewPool)
	// Snapshot interval 0: the query API reads snapshots but never writes them.
	deps := httpapi.Deps{
		Views: views, Stats: stats, Search: search, Events: store, Projections: s.monitor, Changes: feed,
		Orders:   aggregate.NewRepository(store, aggregate.Orders, 0, log, aggMetrics),
		Accounts: aggregate.NewRepository(store, aggregate.Accounts, 0, log, aggMetrics),
	}
	s.handler = httpapi.NewRouter(deps, httpapi.Config{ReadWait: cfg.ReadWait, MaxWait: config.MaxReadWait,
		PollInterval: cfg.PollInterval, RecheckInterval: cfg.RecheckInterval}, log, s.health, s.registry)
	return s, nil
}

// startFeed listens for projector-orders' change notifications on a
// connection of its own to the read models' database, from now until Close
// (not Run: the handler serves ?min_version reads as soon as New returns).
func (s *Server) startFeed(pool *pgxpool.Pool) *changefeed.Feed {
	connConfig := pool.Config().ConnConfig
	feed := changefeed.New(func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.ConnectConfig(ctx, connConfig.Copy())
	}, s.log, s.registry)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); feed.Run(ctx) }()
	s.stopFeed = func() { cancel(); <-done }
	return feed
}

func (s *Server) openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	pcfg.MaxConns = s.cfg.DBMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	s.pools = append(s.pools, pool)
	return pool, nil
}

// Handler is the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the service's metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Close releases every connection. It is safe to call more than once.
func (s *Server) Close() {
	s.close.Do(func() {
		if s.stopFeed != nil {
			s.stopFeed()
		}
		for _, p := range s.pools {
			p.Close()
		}
		if s.rdb != nil {
			_ = s.rdb.Close()
		}
		if s.es != nil {
			s.es.Stop()
		}
	})
}

// Run serves HTTP and refreshes the lag gauge until ctx ends, then shuts
// down in order: readiness off, HTTP drained, background work stopped,
// connections closed.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if s.cfg.LagInterval > 0 {
		wg.Go(func() { s.monitor.Run(bg, s.cfg.LagInterval) })
	}
	// WriteTimeout leaves room for the longest ?min_version wait.
	srv := &http.Server{Addr: s.cfg.HTTPAddr, Handler: s.handler, ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout: config.MaxReadWait + 20*time.Second, IdleTimeout: 2 * time.Minute}
	httpDone := make(chan error, 1)
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	go func() { httpDone <- httpserver.Serve(httpCtx, s.log, srv, s.cfg.ShutdownTimeout) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpDone:
		httpDone <- nil
	}
	s.log.Info("shutting down")
	s.health.Drain()
	stopHTTP()
	if herr := <-httpDone; herr != nil {
		err = errors.Join(err, herr)
	}
	stopBG()
	wg.Wait()
	return err
}
