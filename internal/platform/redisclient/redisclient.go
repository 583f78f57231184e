// Package redisclient holds what every component that talks to Redis
// shares: the classification of errors that mean Redis is unavailable.
package redisclient

import (
	"errors"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/platform/neterr"
)

// Unavailable reports whether err means Redis could not be reached or is
// temporarily unable to serve (loading its data, a read-only replica, a
// failover, a busy script, a full client table or pool), as opposed to a
// command it rejects.
func Unavailable(err error) bool {
	switch {
	case err == nil:
		return false
	case neterr.Is(err), errors.Is(err, io.EOF), errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsClusterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.HasErrorPrefix(err, "BUSY")
}
