// Package projector runs one projector process: a consumer group feeding a
// read model through the Sequencer, plus /healthz, /readyz and /metrics.
// Each projector's main only builds its model and calls Run.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/eventsourcing/eventstore"
	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/platform/httpserver"
	"github.com/escqrs/platform/internal/platform/kafkabus"
	"github.com/escqrs/platform/pkg/events"
)

// Config is what every projector reads from the environment.
type Config struct {
	HTTPAddr        string
	DatabaseURL     string // the event store, read-only use (gap healing)
	KafkaBrokers    []string
	KafkaPartitions int
	TopicPrefix     string
	GroupID         string
	LogLevel        string
	MaxBatch        int
	// Linger is how long a batch waits for more events once it has one:
	// a few milliseconds where visibility is measured in milliseconds, more
	// where each batch has a large fixed cost (an Elasticsearch bulk).
	Linger          time.Duration
	ShutdownTimeout time.Duration
}

// ConfigFromEnv reads the shared settings; group, port and linger are the
// projector's own defaults.
func ConfigFromEnv(env *envconfig.Reader, group, defaultAddr string, defaultLinger time.Duration) Config {
	return Config{
		HTTPAddr:        env.String("HTTP_ADDR", defaultAddr),
		DatabaseURL:     env.String("DATABASE_URL", envconfig.DefaultDatabaseURL),
		KafkaBrokers:    env.List("KAFKA_BROKERS", envconfig.DefaultKafkaBrokers),
		KafkaPartitions: env.Int("KAFKA_PARTITIONS", 12),
		TopicPrefix:     env.String("KAFKA_TOPIC_PREFIX", ""),
		GroupID:         env.String("CONSUMER_GROUP", group),
		LogLevel:        env.String("LOG_LEVEL", "info"),
		MaxBatch:        env.Int("MAX_BATCH", 500),
		Linger:          env.Duration("CONSUMER_LINGER", defaultLinger),
		ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	}
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("CONSUMER_GROUP is empty"))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 10000 {
		errs = append(errs, fmt.Errorf("MAX_BATCH=%d: must be 1..10000", c.MaxBatch))
	}
	if c.Linger < 0 || c.Linger > 5*time.Second {
		errs = append(errs, fmt.Errorf("CONSUMER_LINGER=%s: must be between 0 and 5s", c.Linger))
	}
	return errors.Join(errs...)
}

// Deps are what the shared runtime opens for every projector.
type Deps struct {
	Store    *eventstore.Store
	Pool     *pgxpool.Pool
	Registry *prometheus.Registry
}

// Open connects to the event store (read-only use) and creates the registry.
func Open(ctx context.Context, cfg Config, reg *prometheus.Registry) (*Deps, error) {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect event store: %w", err)
	}
	return &Deps{Store: eventstore.New(pool), Pool: pool, Registry: reg}, nil
}

// Close releases the dependencies.
func (d *Deps) Close() { d.Pool.Close() }

// Run consumes into model until ctx ends, serving health and metrics on
// cfg.HTTPAddr; extra routes (e.g. admin) may be mounted by mount. streams
// limits the topics consumed to those stream types (none: all).
func Run(ctx context.Context, cfg Config, log *slog.Logger, deps *Deps, model consumer.Model,
	checks map[string]httpserver.Check, mount func(chi.Router), streams ...events.StreamType) error {
	checks["postgres"] = func(ctx context.Context) error { return deps.Pool.Ping(ctx) }
	health := httpserver.NewHealth(checks)
	r := chi.NewRouter()
	health.Mount(r, deps.Registry)
	if mount != nil {
		mount(r)
	}
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: r, ReadHeaderTimeout: 5 * time.Second}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpserver.Serve(httpCtx, log, srv, 5*time.Second) }()

	// Topics may not exist yet if the projector starts before the command API.
	// The DLQ topics are created up front too: a producer's metadata cache
	// would otherwise not see a DLQ created at the moment of the first poison.
	topics := kafkabus.PrefixedTopics(cfg.TopicPrefix)
	if len(streams) > 0 {
		topics = nil
		for _, st := range streams {
			topics = append(topics, cfg.TopicPrefix+st.Topic())
		}
	}
	all := append([]string(nil), topics...)
	for _, t := range topics {
		all = append(all, kafkabus.DLQ(t))
	}
	for {
		err := kafkabus.EnsureTopics(ctx, cfg.KafkaBrokers, cfg.KafkaPartitions, all...)
		if err == nil || ctx.Err() != nil {
			break
		}
		log.Warn("waiting for kafka", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	metrics := consumer.NewMetrics(deps.Registry, cfg.GroupID)
	c := consumer.New(consumer.Config{Brokers: cfg.KafkaBrokers, GroupID: cfg.GroupID, Topics: topics, MaxBatch: cfg.MaxBatch,
		Linger: cfg.Linger, ShutdownTimeout: cfg.ShutdownTimeout},
		consumer.NewSequencer(model, deps.Store, metrics), log, metrics)
	log.Info("projector consuming", "group", cfg.GroupID, "topics", topics)
	err := c.Run(ctx)
	health.Drain()
	stopHTTP()
	return errors.Join(err, <-httpDone)
}
