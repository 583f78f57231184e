// Package neterr tells failures of the network itself (a connection refused,
// reset or cut in the middle of a reply, a time-out) from every other error.
// Each engine's classifier (postgres.Unavailable, redisclient.Unavailable,
// elasticclient.Unavailable, kafkabus.Unavailable) starts from it.
package neterr

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Is reports whether err is a connection-level failure or a time-out: the
// peer could not be reached or stopped answering, so the same request may
// succeed later.
func Is(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF)
}
