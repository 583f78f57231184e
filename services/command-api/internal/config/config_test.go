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
			if c.HTTPAddr != ":8080" || c.DBMaxConns != 40 || c.AppendGroupWriters != 1 || c.RelayBatchSize != 500 {
				t.Fatalf("defaults = %+v", c)
			}
		}},
		{name: "group writers", env: map[string]string{"APPEND_GROUP_WRITERS": "4"}, check: func(t *testing.T, c Config) {
			if c.AppendGroupWriters != 4 {
				t.Fatalf("AppendGroupWriters = %d, want 4", c.AppendGroupWriters)
			}
		}},
		{name: "no group writer", env: map[string]string{"APPEND_GROUP_WRITERS": "0"}, wantErr: []string{"APPEND_GROUP_WRITERS=0"}},
		{name: "every error at once",
			env:     map[string]string{"APPEND_GROUP_WRITERS": "8", "DB_MAX_CONNS": "8", "RELAY_BATCH_SIZE": "0", "KAFKA_PARTITIONS": "many"},
			wantErr: []string{"APPEND_GROUP_WRITERS=8", "RELAY_BATCH_SIZE=0", "KAFKA_PARTITIONS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"APPEND_GROUP_WRITERS", "DB_MAX_CONNS", "RELAY_BATCH_SIZE", "KAFKA_PARTITIONS", "HTTP_ADDR"}
			if c, ok := envconfigtest.FromEnv(t, FromEnv, names, tc.env, tc.wantErr); ok {
				tc.check(t, c)
			}
		})
	}
}
