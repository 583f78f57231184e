package config

import (
	"testing"

	"github.com/escqrs/platform/internal/testsupport/envconfigtest"
)

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings; empty: valid
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.Projector.HTTPAddr != ":9102" || c.Projector.GroupID != "projector-stats" || c.RedisURL != "redis://127.0.0.1:6379/0" {
				t.Fatalf("defaults = %+v", c)
			}
			opts, err := c.RedisOptions()
			if err != nil || opts.Addr != "127.0.0.1:6379" || opts.DB != 0 {
				t.Fatalf("redis options = %+v, %v", opts, err)
			}
		}},
		{name: "redis url", env: map[string]string{"REDIS_URL": "redis://cache:6380/3"}, check: func(t *testing.T, c Config) {
			opts, err := c.RedisOptions()
			if err != nil || opts.Addr != "cache:6380" || opts.DB != 3 {
				t.Fatalf("redis options = %+v, %v", opts, err)
			}
		}},
		{name: "every error at once",
			env:     map[string]string{"REDIS_URL": "http://x", "MAX_BATCH": "0", "KAFKA_PARTITIONS": "many"},
			wantErr: []string{"REDIS_URL", "MAX_BATCH=0", "KAFKA_PARTITIONS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"REDIS_URL", "MAX_BATCH", "KAFKA_PARTITIONS", "HTTP_ADDR", "CONSUMER_GROUP"}
			if c, ok := envconfigtest.FromEnv(t, FromEnv, names, tc.env, tc.wantErr); ok {
				tc.check(t, c)
			}
		})
	}
}
