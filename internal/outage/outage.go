// Package outage tells a dependency that cannot be reached (retry later)
// from an error that retrying will not fix. The command API and query API
// answer 503 for the first; the projectors retry it without dead-lettering.
package outage

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Network reports connection-level failures and time-outs.
func Network(err error) bool {
	var (
		netErr  net.Error
		connErr *pgconn.ConnectError
	)
	return errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Postgres reports whether err means PostgreSQL could not be reached or did
// not answer in time, rather than that the statement is wrong.
func Postgres(err error) bool {
	var pgErr *pgconn.PgError
	switch {
	case Network(err):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P: operator intervention
		// (shutdown); 53: insufficient resources.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53")
	}
	return pgconn.SafeToRetry(err)
}
