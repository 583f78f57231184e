// Package server wires the command API: pool, migrations, event store,
// application, HTTP routes, outbox relay and its notifier.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/escqrs/platform/internal/eventsourcing/aggregate"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/internal/platform/observability"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/command-api/internal/app"
	"github.com/escqrs/platform/services/command-api/internal/config"
	"github.com/escqrs/platform/services/command-api/internal/httpapi"
	"github.com/escqrs/platform/services/command-api/internal/idempotency"
	"github.com/escqrs/platform/services/command-api/internal/relay"
)

// Server is a wired command API.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	pool     *pgxpool.Pool
	health   *httpserver.Health
	handler  http.Handler
	notifier *relay.Notifier
	relay    *relay.Relay
	registry *prometheus.Registry
}

// New connects to Postgres, applies migrations and wires the service. It
// does not need Kafka: appends never wait for the bus.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := eventstore.Migrate(cfg.DatabaseURL); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = cfg.DBMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	reg := observability.NewRegistry()
	notifier := relay.NewNotifier(pool, log)
	store := eventstore.New(pool, eventstore.WithAppendHook(notifier.Poke), eventstore.WithMetrics(reg), eventstore.WithGroupWriters(cfg.AppendGroupWriters))
	aggMetrics := aggregate.NewMetrics(reg)
	svc := app.NewService(store, idempotency.New(pool),
		aggregate.NewRepository(store, aggregate.Accounts, cfg.SnapshotEveryAccount, log, aggMetrics),
		aggregate.NewRepository(store, aggregate.Orders, cfg.SnapshotEveryOrder, log, aggMetrics))
	health := httpserver.NewHealth(map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	s := &Server{cfg: cfg, log: log, pool: pool, health: health, notifier: notifier, registry: reg,
		handler: httpapi.NewRouter(svc, log, httpapi.Config{}, health, reg)}
	if cfg.RelayEnabled {
		s.relay = relay.New(pool, store, &topicEnsuringWriter{writer: kafkabus.NewProducer(cfg.KafkaBrokers), cfg: cfg}, relay.Config{BatchSize: cfg.RelayBatchSize,
			Topic: func(st events.StreamType) string { return cfg.KafkaTopicPrefix + st.Topic() }}, log, reg)
		notifier.WakeLocal(s.relay.Wake)
	}
	return s, nil
}

// Handler is the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTP and runs the relay until ctx ends, then shuts down in
// order: readiness off, HTTP drained, relay stopped, pool closed.
func (s *Server) Run(ctx context.Context) error {
	defer s.pool.Close()
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.notifier.Run(bg) })
	if s.relay != nil {
		wg.Go(func() {
			if err := s.relay.Run(bg); err != nil {
				s.log.Error("relay stopped", "error", err)
			}
		})
	}
	srv := &http.Server{Addr: s.cfg.HTTPAddr, Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
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

// topicEnsuringWriter creates the topics before the first publish (and
// again after a failed publish), so the command API starts and appends while
// Kafka is still down, and the topics exist with the configured partition
// count before any event is written to them.
type topicEnsuringWriter struct {
	writer relay.Publisher
	cfg    config.Config
	ready  bool
}

func (w *topicEnsuringWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if !w.ready {
		if err := kafkabus.EnsureTopics(ctx, w.cfg.KafkaBrokers, w.cfg.KafkaPartitions, kafkabus.PrefixedTopics(w.cfg.KafkaTopicPrefix)...); err != nil {
			return err
		}
		w.ready = true
	}
	if err := w.writer.WriteMessages(ctx, msgs...); err != nil {
		w.ready = false
		return err
	}
	return nil
}
