// Package domain holds what the Account and Order aggregates share: the typed
// errors a command can fail with. The aggregates themselves are pure code in
// the account and order sub-packages: no I/O, no clocks, no randomness.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Rule violations. The HTTP layer maps all of them to 409 Conflict.
var (
	ErrRuleViolation     = errors.New("business rule violated")
	ErrInsufficientFunds = fmt.Errorf("%w: insufficient funds", ErrRuleViolation)
	ErrAccountClosed     = fmt.Errorf("%w: account is closed", ErrRuleViolation)
	ErrAlreadyExists     = fmt.Errorf("%w: aggregate already exists", ErrRuleViolation)
	ErrInvalidTransition = fmt.Errorf("%w: not allowed in the current status", ErrRuleViolation)
	ErrCurrencyMismatch  = fmt.Errorf("%w: currency mismatch", ErrRuleViolation)
	// ErrNotFound means the command targets a stream with no events.
	ErrNotFound = errors.New("aggregate not found")
)

// FieldError is one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a command at once, so a client
// can fix them all in one round trip.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid command: " + strings.Join(parts, "; ")
}

// Validator collects field errors; Err returns nil when there are none.
type Validator struct{ fields []FieldError }

// Check records msg for field when ok is false.
func (v *Validator) Check(ok bool, field, msg string) {
	if !ok {
		v.fields = append(v.fields, FieldError{Field: field, Message: msg})
	}
}

// Err is the collected *ValidationError, or nil.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: v.fields}
}

// ValidCurrency reports whether c looks like an ISO 4217 code (three upper-case letters).
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
