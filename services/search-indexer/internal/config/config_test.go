package config

import (
	"testing"

	"github.com/escqrs/platform/internal/testsupport/envconfigtest"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings every one of which the error must hold
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.ElasticsearchURL != "http://127.0.0.1:9200" || c.Projector.HTTPAddr != ":9103" || c.Projector.GroupID != "search-indexer" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "overrides", env: map[string]string{"ELASTICSEARCH_URL": "https://es.internal:9243", "HTTP_ADDR": ":9999"},
			check: func(t *testing.T, c Config) {
				if c.ElasticsearchURL != "https://es.internal:9243" || c.Projector.HTTPAddr != ":9999" {
					t.Errorf("overrides: %+v", c)
				}
			}},
		{name: "every problem at once", env: map[string]string{"ELASTICSEARCH_URL": "127.0.0.1:9200", "MAX_BATCH": "0", "KAFKA_PARTITIONS": "x"},
			wantErr: []string{"ELASTICSEARCH_URL", "MAX_BATCH", "KAFKA_PARTITIONS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := []string{"ELASTICSEARCH_URL", "HTTP_ADDR", "MAX_BATCH", "KAFKA_PARTITIONS", "CONSUMER_GROUP"}
			if c, ok := envconfigtest.FromEnv(t, FromEnv, names, tt.env, tt.wantErr); ok {
				tt.check(t, c)
			}
		})
	}
}
