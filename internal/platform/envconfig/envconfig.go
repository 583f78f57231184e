// Package envconfig reads typed settings from environment variables and
// collects every malformed one, so a service reports all its configuration
// problems at once instead of one per restart.
package envconfig

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables and remembers parse errors.
type Reader struct{ errs []error }

// Err joins every parse error seen so far.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// String returns the variable or def when unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// List splits a comma-separated variable.
func (r *Reader) List(name, def string) []string {
	var out []string
	for _, s := range strings.Split(r.String(name, def), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Int parses an integer variable.
func (r *Reader) Int(name string, def int) int {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: not an integer", name, v))
		return def
	}
	return n
}

// Bool parses a boolean variable (1, true, false, 0...).
func (r *Reader) Bool(name string, def bool) bool {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: not a boolean", name, v))
		return def
	}
	return b
}

// Duration parses a Go duration variable (e.g. 20s, 150ms).
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: not a duration (e.g. 20s)", name, v))
		return def
	}
	return d
}

// Local stack defaults, shared by every service.
const (
	DefaultDatabaseURL      = "postgres://cqrs:cqrs@127.0.0.1:5432/cqrs?sslmode=disable"
	DefaultKafkaBrokers     = "127.0.0.1:9092"
	DefaultRedisURL         = "redis://127.0.0.1:6379/0"
	DefaultElasticsearchURL = "http://127.0.0.1:9200"
)
