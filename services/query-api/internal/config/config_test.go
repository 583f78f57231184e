package config

import (
	"strings"
	"testing"
	"time"
)

func TestFromEnvDefaults(t *testing.T) {
	for _, v := range []string{"HTTP_ADDR", "DATABASE_URL", "READMODEL_DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "READ_WAIT",
		"STATS_NAMESPACE_KEY", "SEARCH_ALIAS", "SEARCH_CHECKPOINT_INDEX", "PROJECTION_LAG_INTERVAL", "READ_POLL_INTERVAL", "READ_RECHECK_INTERVAL"} {
		t.Setenv(v, "")
	}
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8081" || c.ReadWait != 2*time.Second || c.ReadModelDatabaseURL != c.DatabaseURL ||
		c.PollInterval != 10*time.Millisecond || c.RecheckInterval != 250*time.Millisecond ||
		c.StatsNamespaceKey != "stats:active-namespace" || c.SearchAlias != "orders" || c.SearchCheckpointIndex != "projection-checkpoints" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestFromEnvCollectsEveryError(t *testing.T) {
	t.Setenv("READ_WAIT", "soon")
	t.Setenv("DB_MAX_CONNS", "many")
	t.Setenv("REDIS_URL", "http://nope")
	_, err := FromEnv()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"READ_WAIT", "DB_MAX_CONNS", "REDIS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		return Config{HTTPAddr: ":8081", DatabaseURL: "postgres://x", ReadModelDatabaseURL: "postgres://x", RedisURL: "redis://127.0.0.1:6379/0",
			ElasticsearchURL: "http://127.0.0.1:9200", ReadWait: 2 * time.Second, PollInterval: 10 * time.Millisecond,
			RecheckInterval: 250 * time.Millisecond, StatsNamespaceKey: "k", SearchAlias: "orders", SearchCheckpointIndex: "cp", DBMaxConns: 5, ShutdownTimeout: time.Second}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	tests := []struct {
		want   string
		mutate func(*Config)
	}{
		{"HTTP_ADDR", func(c *Config) { c.HTTPAddr = "" }},
		{"DATABASE_URL", func(c *Config) { c.DatabaseURL = "" }},
		{"READMODEL_DATABASE_URL", func(c *Config) { c.ReadModelDatabaseURL = "" }},
		{"REDIS_URL", func(c *Config) { c.RedisURL = "localhost" }},
		{"ELASTICSEARCH_URL", func(c *Config) { c.ElasticsearchURL = "" }},
		{"READ_WAIT", func(c *Config) { c.ReadWait = 11 * time.Second }},
		{"READ_WAIT", func(c *Config) { c.ReadWait = -time.Second }},
		{"READ_POLL_INTERVAL", func(c *Config) { c.PollInterval = 0 }},
		{"READ_RECHECK_INTERVAL", func(c *Config) { c.RecheckInterval = 0 }},
		{"READ_RECHECK_INTERVAL", func(c *Config) { c.RecheckInterval = time.Minute }},
		{"STATS_NAMESPACE_KEY", func(c *Config) { c.StatsNamespaceKey = "" }},
		{"SEARCH_ALIAS", func(c *Config) { c.SearchAlias = "" }},
		{"SEARCH_CHECKPOINT_INDEX", func(c *Config) { c.SearchCheckpointIndex = "" }},
		{"PROJECTION_LAG_INTERVAL", func(c *Config) { c.LagInterval = -time.Second }},
		{"DB_MAX_CONNS", func(c *Config) { c.DBMaxConns = 0 }},
		{"SHUTDOWN_TIMEOUT", func(c *Config) { c.ShutdownTimeout = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
