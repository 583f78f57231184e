package domain_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/escqrs/platform/internal/domain"
)

func TestValidator(t *testing.T) {
	type check struct {
		ok         bool
		field, msg string
	}
	tests := []struct {
		name    string
		checks  []check
		want    []domain.FieldError // nil: Err must be nil
		wantMsg string
	}{
		{name: "no checks", checks: nil},
		{name: "all pass", checks: []check{{true, "a", "x"}, {true, "b", "y"}}},
		{
			name:    "one failure",
			checks:  []check{{true, "a", "x"}, {false, "b", "must be positive"}},
			want:    []domain.FieldError{{Field: "b", Message: "must be positive"}},
			wantMsg: "invalid command: b: must be positive",
		},
		{
			name:   "failures kept in check order",
			checks: []check{{false, "owner", "must be 1 to 200 characters"}, {true, "x", "y"}, {false, "currency", "must be a three-letter ISO 4217 code"}, {false, "items[0].sku", "bad"}},
			want: []domain.FieldError{
				{Field: "owner", Message: "must be 1 to 200 characters"},
				{Field: "currency", Message: "must be a three-letter ISO 4217 code"},
				{Field: "items[0].sku", Message: "bad"},
			},
			wantMsg: "invalid command: owner: must be 1 to 200 characters; currency: must be a three-letter ISO 4217 code; items[0].sku: bad",
		},
		{
			name:    "same field twice is reported twice",
			checks:  []check{{false, "f", "m1"}, {false, "f", "m2"}},
			want:    []domain.FieldError{{Field: "f", Message: "m1"}, {Field: "f", Message: "m2"}},
			wantMsg: "invalid command: f: m1; f: m2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v domain.Validator
			for _, c := range tt.checks {
				v.Check(c.ok, c.field, c.msg)
			}
			err := v.Err()
			if tt.want == nil {
				// Must be an untyped nil, not a nil *ValidationError in an error interface.
				if err != nil {
					t.Fatalf("Err() = %#v, want nil", err)
				}
				return
			}
			var ve *domain.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Err() = %#v, want *domain.ValidationError", err)
			}
			if !reflect.DeepEqual(ve.Fields, tt.want) {
				t.Fatalf("fields = %+v, want %+v", ve.Fields, tt.want)
			}
			if got := err.Error(); got != tt.wantMsg {
				t.Fatalf("Error() = %q, want %q", got, tt.wantMsg)
			}
			if errors.Is(err, domain.ErrRuleViolation) || errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("validation error %v must not match a rule violation or not-found", err)
			}
		})
	}
}

func TestValidationErrorMessageEmpty(t *testing.T) {
	if got := (&domain.ValidationError{}).Error(); got != "invalid command: " {
		t.Fatalf("Error() = %q", got)
	}
}

func TestErrorTaxonomy(t *testing.T) {
	tests := []struct {
		err      error
		ruleViol bool
		msg      string
	}{
		{domain.ErrInsufficientFunds, true, "business rule violated: insufficient funds"},
		{domain.ErrAccountClosed, true, "business rule violated: account is closed"},
		{domain.ErrAlreadyExists, true, "business rule violated: aggregate already exists"},
		{domain.ErrInvalidTransition, true, "business rule violated: not allowed in the current status"},
		{domain.ErrCurrencyMismatch, true, "business rule violated: currency mismatch"},
		{domain.ErrNotFound, false, "aggregate not found"},
	}
	all := make([]error, len(tests))
	for i, tt := range tests {
		all[i] = tt.err
	}
	for i, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			if got := errors.Is(tt.err, domain.ErrRuleViolation); got != tt.ruleViol {
				t.Fatalf("errors.Is(%v, ErrRuleViolation) = %v, want %v", tt.err, got, tt.ruleViol)
			}
			if tt.err.Error() != tt.msg {
				t.Fatalf("message = %q, want %q", tt.err.Error(), tt.msg)
			}
			// The sentinels are distinct from one another.
			for j, other := range all {
				if j != i && errors.Is(tt.err, other) {
					t.Fatalf("%v unexpectedly matches %v", tt.err, other)
				}
			}
		})
	}
}

func TestValidCurrency(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"EUR", true},
		{"USD", true},
		{"AAA", true},
		{"ZZZ", true},
		{"", false},
		{"E", false},
		{"EU", false},
		{"EURO", false},
		{"eur", false},
		{"Eur", false},
		{"EUr", false},
		{"E1R", false},
		{"US ", false},
		{" US", false},
		{"@AB", false}, // '@' is just below 'A'
		{"AB[", false}, // '[' is just above 'Z'
		{"ÉU", false},  // 3 bytes, but not three ASCII letters
		{"ÄÖÜ", false},
		{"EU\x00", false},
	}
	for _, tt := range tests {
		if got := domain.ValidCurrency(tt.in); got != tt.want {
			t.Errorf("ValidCurrency(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
