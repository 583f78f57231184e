package neterr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/escqrs/platform/internal/platform/neterr"
)

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"cut reply", fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF), true},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"net.OpError", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route")}, true},
		{"canceled", context.Canceled, false},
		{"plain", errors.New("syntax error"), false},
		{"clean EOF", io.EOF, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := neterr.Is(tc.err); got != tc.want {
				t.Fatalf("Is(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
