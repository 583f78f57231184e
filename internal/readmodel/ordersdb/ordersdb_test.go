package ordersdb

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestChangePayloads(t *testing.T) {
	ids := func(n int) []uuid.UUID {
		out := make([]uuid.UUID, n)
		for i := range out {
			out[i] = uuid.New()
		}
		return out
	}
	perPayload := (maxChangePayload + 1) / 37 // 36 characters and a comma each
	tests := []struct {
		name     string
		ids      []uuid.UUID
		payloads int
	}{
		{"none", nil, 0},
		{"one", ids(1), 1},
		{"a full payload", ids(perPayload), 1},
		{"one more than fits", ids(perPayload + 1), 2},
		{"a rebuild-sized batch", ids(1000), (1000 + perPayload - 1) / perPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payloads := ChangePayloads(tt.ids)
			if len(payloads) != tt.payloads {
				t.Fatalf("%d payloads, want %d", len(payloads), tt.payloads)
			}
			var got []uuid.UUID
			for _, p := range payloads {
				if len(p) > maxChangePayload || strings.HasPrefix(p, ",") || strings.HasSuffix(p, ",") {
					t.Fatalf("payload of %d bytes: %.50q...", len(p), p)
				}
				parsed, err := ParseChangePayload(p)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, parsed...)
			}
			if !slices.Equal(got, tt.ids) {
				t.Fatalf("round trip gave %d ids, want the %d given in order", len(got), len(tt.ids))
			}
		})
	}
}

func TestParseChangePayloadRejectsGarbage(t *testing.T) {
	for _, p := range []string{"not-a-uuid", uuid.NewString() + ",", "," + uuid.NewString()} {
		if ids, err := ParseChangePayload(p); err == nil {
			t.Errorf("ParseChangePayload(%q) = %v, want an error", p, ids)
		}
	}
}
