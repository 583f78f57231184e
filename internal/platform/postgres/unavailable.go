package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/escqrs/platform/internal/platform/neterr"
)

// Unavailable reports whether err means PostgreSQL could not be reached, did
// not answer in time, is starting up or shutting down, or lacks resources
// (too many connections, disk full), rather than that the statement is
// wrong: the same statement may succeed later. The APIs answer 503 for it;
// the projectors retry it without dead-lettering.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
	)
	switch {
	case neterr.Is(err), errors.As(err, &connErr), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P: operator intervention
		// (shutdown, starting up); 53: insufficient resources.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53")
	}
	return pgconn.SafeToRetry(err)
}

// Retryable reports what Unavailable does, and also a transaction that lost
// a race to another (a serialization failure, a deadlock): run again, it
// succeeds.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return true
	}
	return Unavailable(err)
}

// UndefinedTable reports SQLSTATE 42P01: a table that does not exist yet
// (its owner has not migrated it).
func UndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
