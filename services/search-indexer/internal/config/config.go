// Package config reads the search indexer's configuration from the environment.
package config

import (
	"errors"
	"net/url"
	"time"

	"github.com/escqrs/platform/internal/platform/envconfig"
	"github.com/escqrs/platform/internal/projector"
)

// Config is everything the search indexer can be told.
type Config struct {
	Projector        projector.Config
	ElasticsearchURL string
	// IndexPrefix is prepended to the alias and index names.
	IndexPrefix string
	// CheckpointEvery bounds how often the checkpoint document is written
	// (see searchmodel.WithCheckpointEvery).
	CheckpointEvery time.Duration
}

// FromEnv reads the configuration, with defaults that match the local stack.
func FromEnv() (Config, error) {
	var env envconfig.Reader
	c := Config{
		Projector:        projector.ConfigFromEnv(&env, "search-indexer", ":9103", 100*time.Millisecond),
		ElasticsearchURL: env.String("ELASTICSEARCH_URL", envconfig.DefaultElasticsearchURL),
		IndexPrefix:      env.String("SEARCH_INDEX_PREFIX", ""),
		CheckpointEvery:  env.Duration("SEARCH_CHECKPOINT_INTERVAL", time.Second),
	}
	return c, errors.Join(env.Err(), c.Validate())
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	errs := []error{c.Projector.Validate()}
	if u, err := url.Parse(c.ElasticsearchURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("ELASTICSEARCH_URL: must be an http(s) URL such as http://127.0.0.1:9200"))
	}
	if c.CheckpointEvery < 0 || c.CheckpointEvery > time.Minute {
		errs = append(errs, errors.New("SEARCH_CHECKPOINT_INTERVAL: must be between 0 (every batch) and 1m"))
	}
	return errors.Join(errs...)
}
