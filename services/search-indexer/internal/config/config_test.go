package config

import (
	"strings"
	"testing"
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
			for _, k := range []string{"ELASTICSEARCH_URL", "HTTP_ADDR", "MAX_BATCH", "KAFKA_PARTITIONS", "CONSUMER_GROUP"} {
				t.Setenv(k, tt.env[k])
			}
			c, err := FromEnv()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}
