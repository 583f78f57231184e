// Package testenv gives integration tests the real engines started by
// scripts/stack.sh. Addresses come from the same environment variables the
// services read, with the local stack's defaults. A test skips when an
// engine is absent, except under CI=true, where an absent engine is a failure:
// CI must never go green by skipping.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Local defaults, matching scripts/stack.sh. Redis is its database 15, not
// the 0 that `make run` fills: tests look for their keys with SCAN, which
// walks the whole database, and after a few bench-latency runs database 0
// holds millions of customer keys (a projector-stats rebuild test then took
// over 8 minutes instead of seconds).
const (
	DefaultDatabaseURL      = "postgres://cqrs:cqrs@127.0.0.1:5432/cqrs?sslmode=disable"
	DefaultKafkaBrokers     = "127.0.0.1:9092"
	DefaultRedisURL         = "redis://127.0.0.1:6379/15"
	DefaultElasticsearchURL = "http://127.0.0.1:9200"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// DatabaseURL is the server tests create their databases on.
func DatabaseURL() string { return env("DATABASE_URL", DefaultDatabaseURL) }

// KafkaBrokers is the comma-separated broker list.
func KafkaBrokers() []string { return strings.Split(env("KAFKA_BROKERS", DefaultKafkaBrokers), ",") }

// RedisURL is the Redis server.
func RedisURL() string { return env("REDIS_URL", DefaultRedisURL) }

// ElasticsearchURL is the Elasticsearch (or OpenSearch) node.
func ElasticsearchURL() string { return env("ELASTICSEARCH_URL", DefaultElasticsearchURL) }

// Require skips (or, under CI, fails) the test when addr does not accept TCP connections.
func Require(t testing.TB, engine, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		return
	}
	msg := fmt.Sprintf("%s not reachable at %s (%v): start it with `scripts/stack.sh up`", engine, addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// RequireKafka checks the first broker.
func RequireKafka(t testing.TB) { Require(t, "kafka", KafkaBrokers()[0]) }

// RequireRedis checks Redis.
func RequireRedis(t testing.TB) { Require(t, "redis", hostOf(RedisURL())) }

// RequireElasticsearch checks Elasticsearch.
func RequireElasticsearch(t testing.TB) { Require(t, "elasticsearch", hostOf(ElasticsearchURL())) }

// NewDatabase creates a fresh, empty database for this test and drops it
// when the test ends. It returns the new database's URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := DatabaseURL()
	Require(t, "postgres", hostOf(base))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer admin.Close(ctx)
	name := "test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// NewPool opens a pool on url, closed when the test ends.
func NewPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	cfg.MaxConns = 80
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pool %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}
