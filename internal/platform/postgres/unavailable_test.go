package postgres_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/escqrs/platform/internal/platform/postgres"
)

func TestClassification(t *testing.T) {
	code := func(c string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: c}) }
	for _, tc := range []struct {
		name                      string
		err                       error
		unavailable, retry, table bool
	}{
		{"nil", nil, false, false, false},
		{"refused", fmt.Errorf("connect: %w", syscall.ECONNREFUSED), true, true, false},
		{"connection exception", code("08006"), true, true, false},
		{"admin shutdown", code("57P01"), true, true, false},
		{"starting up", code("57P03"), true, true, false},
		{"too many connections", code("53300"), true, true, false},
		{"serialization failure", code("40001"), false, true, false},
		{"deadlock", code("40P01"), false, true, false},
		{"undefined table", code("42P01"), false, false, true},
		{"unique violation", code("23505"), false, false, false},
		{"plain", errors.New("bad"), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := postgres.Unavailable(tc.err); got != tc.unavailable {
				t.Errorf("Unavailable = %v, want %v", got, tc.unavailable)
			}
			if got := postgres.Retryable(tc.err); got != tc.retry {
				t.Errorf("Retryable = %v, want %v", got, tc.retry)
			}
			if got := postgres.UndefinedTable(tc.err); got != tc.table {
				t.Errorf("UndefinedTable = %v, want %v", got, tc.table)
			}
		})
	}
}
