// Package config reads projector-stats' settings from the environment.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/projector"
)

// Config is projector-stats' configuration: the settings every projector
// shares, plus Redis.
type Config struct {
	Projector projector.Config
	RedisURL  string
	// KeyPrefix (STATS_KEY_PREFIX) shifts every key, so that several
	// deployments or test runs can share one Redis server.
	KeyPrefix string
}

// FromEnv reads the configuration and validates it, reporting every problem.
func FromEnv() (Config, error) {
	var env envconfig.Reader
	cfg := Config{
		Projector: projector.ConfigFromEnv(&env, "projector-stats", ":9102", 2*time.Millisecond),
		RedisURL:  env.String("REDIS_URL", envconfig.DefaultRedisURL),
		KeyPrefix: env.String("STATS_KEY_PREFIX", ""),
	}
	return cfg, errors.Join(env.Err(), cfg.Validate())
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	errs := []error{c.Projector.Validate()}
	if _, err := c.RedisOptions(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RedisOptions parses RedisURL.
func (c Config) RedisOptions() (*redis.Options, error) {
	if c.RedisURL == "" {
		return nil, errors.New("REDIS_URL is empty")
	}
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return opts, nil
}
