// Package config reads the command API's configuration from the environment.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/escqrs/platform/internal/platform/envconfig"
)

// Config is everything the command API can be told.
type Config struct {
	HTTPAddr             string
	DatabaseURL          string
	KafkaBrokers         []string
	KafkaPartitions      int
	KafkaTopicPrefix     string
	LogLevel             string
	RelayEnabled         bool
	RelayBatchSize       int
	SnapshotEveryAccount int64
	SnapshotEveryOrder   int64
	DBMaxConns           int32
	// AppendGroupWriters is how many groups of appends are written at once
	// (eventstore.WithGroupWriters).
	AppendGroupWriters int
	ShutdownTimeout    time.Duration
}

// FromEnv reads the configuration, with defaults that match the local stack.
func FromEnv() (Config, error) {
	var env envconfig.Reader
	c := Config{
		HTTPAddr:             env.String("HTTP_ADDR", ":8080"),
		DatabaseURL:          env.String("DATABASE_URL", envconfig.DefaultDatabaseURL),
		KafkaBrokers:         env.List("KAFKA_BROKERS", envconfig.DefaultKafkaBrokers),
		LogLevel:             env.String("LOG_LEVEL", "info"),
		KafkaPartitions:      env.Int("KAFKA_PARTITIONS", 12),
		KafkaTopicPrefix:     env.String("KAFKA_TOPIC_PREFIX", ""),
		RelayEnabled:         env.Bool("RELAY_ENABLED", true),
		RelayBatchSize:       env.Int("RELAY_BATCH_SIZE", 500),
		SnapshotEveryAccount: int64(env.Int("SNAPSHOT_EVERY_ACCOUNT", 100)),
		SnapshotEveryOrder:   int64(env.Int("SNAPSHOT_EVERY_ORDER", 0)),
		DBMaxConns:           int32(env.Int("DB_MAX_CONNS", 40)),
		AppendGroupWriters:   env.Int("APPEND_GROUP_WRITERS", 1),
		ShutdownTimeout:      env.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
	}
	return c, errors.Join(env.Err(), c.Validate())
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	}
	if len(c.KafkaBrokers) == 0 || c.KafkaBrokers[0] == "" {
		errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
	}
	if c.KafkaPartitions < 1 {
		errs = append(errs, fmt.Errorf("KAFKA_PARTITIONS=%d: must be at least 1", c.KafkaPartitions))
	}
	if c.RelayBatchSize < 1 || c.RelayBatchSize > 10000 {
		errs = append(errs, fmt.Errorf("RELAY_BATCH_SIZE=%d: must be 1..10000", c.RelayBatchSize))
	}
	if c.SnapshotEveryAccount < 0 || c.SnapshotEveryOrder < 0 {
		errs = append(errs, errors.New("SNAPSHOT_EVERY_*: must not be negative (0 disables)"))
	}
	if c.DBMaxConns < 2 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS=%d: must be at least 2 (the relay holds one)", c.DBMaxConns))
	}
	if c.AppendGroupWriters < 1 || int32(c.AppendGroupWriters) >= c.DBMaxConns {
		errs = append(errs, fmt.Errorf("APPEND_GROUP_WRITERS=%d: must be at least 1 and below DB_MAX_CONNS", c.AppendGroupWriters))
	}
	return errors.Join(errs...)
}
