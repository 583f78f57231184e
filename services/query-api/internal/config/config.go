// Package config reads the query API's configuration from the environment.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/readmodel/statskeys"
)

// MaxReadWait caps how long any request may wait for a projection to reach
// a version (READ_WAIT and ?wait= alike).
const MaxReadWait = 10 * time.Second

// Config is everything the query API can be told.
type Config struct {
	HTTPAddr string
	// DatabaseURL is the event store (history and as-of reads).
	DatabaseURL string
	// ReadModelDatabaseURL holds projector-orders' tables; it defaults to
	// DatabaseURL, where the local stack keeps both.
	ReadModelDatabaseURL string
	RedisURL             string
	ElasticsearchURL     string
	LogLevel             string
	// ReadWait is how long ?min_version waits for the projection by default.
	ReadWait time.Duration
	// PollInterval is how often a ?min_version wait re-reads the model
	// while the change feed is down.
	PollInterval time.Duration
	// RecheckInterval is how often it re-reads while the change feed is up
	// (it wakes on the notification of its row; this catches one missed).
	RecheckInterval time.Duration
	// StatsNamespaceKey is the Redis key naming the active stats namespace.
	StatsNamespaceKey string
	// StatsDefaultNamespace is used while StatsNamespaceKey is unset.
	StatsDefaultNamespace string
	// SearchAlias is the alias (or index) searched.
	SearchAlias string
	// SearchCheckpointIndex holds search-indexer's checkpoint document.
	SearchCheckpointIndex string
	// LagInterval is how often projection_lag_events is refreshed in the
	// background (0: only when GET /v1/projections is served).
	LagInterval     time.Duration
	DBMaxConns      int32
	ShutdownTimeout time.Duration
}

// FromEnv reads the configuration, with defaults that match the local stack.
func FromEnv() (Config, error) {
	var env envconfig.Reader
	// SEARCH_INDEX_PREFIX is the search indexer's setting; it shifts the
	// default alias and checkpoint index the same way.
	searchPrefix := env.String("SEARCH_INDEX_PREFIX", "")
	// STATS_KEY_PREFIX is projector-stats' setting, shifting its keys alike.
	statsKey, statsNS := statskeys.Prefixed(env.String("STATS_KEY_PREFIX", ""))
	c := Config{
		HTTPAddr:              env.String("HTTP_ADDR", ":8081"),
		DatabaseURL:           env.String("DATABASE_URL", envconfig.DefaultDatabaseURL),
		RedisURL:              env.String("REDIS_URL", envconfig.DefaultRedisURL),
		ElasticsearchURL:      env.String("ELASTICSEARCH_URL", envconfig.DefaultElasticsearchURL),
		LogLevel:              env.String("LOG_LEVEL", "info"),
		ReadWait:              env.Duration("READ_WAIT", 2*time.Second),
		PollInterval:          env.Duration("READ_POLL_INTERVAL", 10*time.Millisecond),
		RecheckInterval:       env.Duration("READ_RECHECK_INTERVAL", 250*time.Millisecond),
		StatsNamespaceKey:     env.String("STATS_NAMESPACE_KEY", statsKey),
		StatsDefaultNamespace: statsNS,
		SearchAlias:           env.String("SEARCH_ALIAS", searchPrefix+searchdoc.Alias),
		SearchCheckpointIndex: env.String("SEARCH_CHECKPOINT_INDEX", searchPrefix+searchdoc.CheckpointIndex),
		LagInterval:           env.Duration("PROJECTION_LAG_INTERVAL", 15*time.Second),
		DBMaxConns:            int32(env.Int("DB_MAX_CONNS", 20)),
		ShutdownTimeout:       env.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
	}
	c.ReadModelDatabaseURL = env.String("READMODEL_DATABASE_URL", c.DatabaseURL)
	return c, errors.Join(env.Err(), c.Validate())
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("HTTP_ADDR is empty"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	}
	if c.ReadModelDatabaseURL == "" {
		errs = append(errs, errors.New("READMODEL_DATABASE_URL is empty"))
	}
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_URL=%q: %w", c.RedisURL, err))
	}
	if c.ElasticsearchURL == "" {
		errs = append(errs, errors.New("ELASTICSEARCH_URL is empty"))
	}
	if c.ReadWait < 0 || c.ReadWait > MaxReadWait {
		errs = append(errs, fmt.Errorf("READ_WAIT=%s: must be 0..%s", c.ReadWait, MaxReadWait))
	}
	if c.PollInterval <= 0 || c.PollInterval > time.Second {
		errs = append(errs, fmt.Errorf("READ_POLL_INTERVAL=%s: must be above 0 and at most 1s", c.PollInterval))
	}
	if c.RecheckInterval <= 0 || c.RecheckInterval > MaxReadWait {
		errs = append(errs, fmt.Errorf("READ_RECHECK_INTERVAL=%s: must be above 0 and at most %s", c.RecheckInterval, MaxReadWait))
	}
	if c.StatsNamespaceKey == "" {
		errs = append(errs, errors.New("STATS_NAMESPACE_KEY is empty"))
	}
	if c.SearchAlias == "" {
		errs = append(errs, errors.New("SEARCH_ALIAS is empty"))
	}
	if c.SearchCheckpointIndex == "" {
		errs = append(errs, errors.New("SEARCH_CHECKPOINT_INDEX is empty"))
	}
	if c.LagInterval < 0 {
		errs = append(errs, fmt.Errorf("PROJECTION_LAG_INTERVAL=%s: must not be negative (0 disables)", c.LagInterval))
	}
	if c.DBMaxConns < 1 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS=%d: must be at least 1", c.DBMaxConns))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT=%s: must be positive", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
