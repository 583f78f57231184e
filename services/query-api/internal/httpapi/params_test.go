package httpapi

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/services/query-api/internal/model"
)

func TestOrderCursorRoundTrip(t *testing.T) {
	keys := []model.OrderKey{
		{PlacedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), OrderID: uuid.New()},
		{PlacedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), OrderID: uuid.Nil},
	}
	for _, k := range keys {
		got, err := decodeOrderCursor(encodeOrderCursor(k))
		if err != nil || !got.PlacedAt.Equal(k.PlacedAt) || got.OrderID != k.OrderID {
			t.Fatalf("round trip of %+v = %+v, %v", k, got, err)
		}
	}
}

func TestBalanceAndVersionCursorRoundTrip(t *testing.T) {
	for _, k := range []model.BalanceKey{{BalanceCents: -5, AccountID: uuid.New()}, {BalanceCents: 1 << 62, AccountID: uuid.New()}} {
		got, err := decodeBalanceCursor(encodeBalanceCursor(k))
		if err != nil || got != k {
			t.Fatalf("round trip of %+v = %+v, %v", k, got, err)
		}
	}
	for _, v := range []int64{1, 42, 1 << 40} {
		got, err := decodeVersionCursor(encodeVersionCursor(v))
		if err != nil || got != v {
			t.Fatalf("round trip of %d = %d, %v", v, got, err)
		}
	}
}

func TestSearchCursorRoundTrip(t *testing.T) {
	id := uuid.NewString()
	// Elasticsearch hands sort values back as float64 (JSON numbers).
	c, err := encodeSearchCursor([]any{float64(1767323045123), id})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSearchCursor(c)
	if err != nil || !reflect.DeepEqual(got, []any{int64(1767323045123), id}) {
		t.Fatalf("decoded %#v, %v", got, err)
	}
}

func TestMalformedCursors(t *testing.T) {
	enc := encodeCursor
	tests := []struct {
		name   string
		cursor string
		decode func(string) error
	}{
		{"order: not base64", "%%%", func(s string) error { _, err := decodeOrderCursor(s); return err }},
		{"order: no separator", enc("2026-01-01T00:00:00Z"), func(s string) error { _, err := decodeOrderCursor(s); return err }},
		{"order: bad time", enc("yesterday|" + uuid.NewString()), func(s string) error { _, err := decodeOrderCursor(s); return err }},
		{"order: bad id", enc("2026-01-01T00:00:00Z|42"), func(s string) error { _, err := decodeOrderCursor(s); return err }},
		{"balance: bad number", enc("x|" + uuid.NewString()), func(s string) error { _, err := decodeBalanceCursor(s); return err }},
		{"balance: bad id", enc("5|x"), func(s string) error { _, err := decodeBalanceCursor(s); return err }},
		{"version: no prefix", enc("5"), func(s string) error { _, err := decodeVersionCursor(s); return err }},
		{"version: zero", enc("v0"), func(s string) error { _, err := decodeVersionCursor(s); return err }},
		{"search: not JSON", enc("[1,"), func(s string) error { _, err := decodeSearchCursor(s); return err }},
		{"search: three values", enc(`[1,"` + uuid.NewString() + `",3]`), func(s string) error { _, err := decodeSearchCursor(s); return err }},
		{"search: fractional time", enc(`[1.5,"` + uuid.NewString() + `"]`), func(s string) error { _, err := decodeSearchCursor(s); return err }},
		{"search: id not a uuid", enc(`[1,"x"]`), func(s string) error { _, err := decodeSearchCursor(s); return err }},
		{"search: trailing data", enc(`[1,"` + uuid.NewString() + `"] []`), func(s string) error { _, err := decodeSearchCursor(s); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.cursor); err == nil {
				t.Fatalf("cursor %q decoded without error", tt.cursor)
			}
		})
	}
}

func TestParseSearch(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	tm := func(s string) *time.Time { v, _ := time.Parse(time.RFC3339, s); v = v.UTC(); return &v }
	cust := uuid.NewString()
	tests := []struct {
		query      string
		want       model.SearchQuery
		wantFields []string
	}{
		{"", model.SearchQuery{Limit: 20}, nil},
		{"q=+lamp+&status=paid&customer_id=" + strings.ToUpper(cust) + "&min_total_cents=0&max_total_cents=10&from=2026-01-01T00:00:00%2B01:00&to=2026-02-01T00:00:00Z&limit=100",
			model.SearchQuery{Text: "lamp", Status: "paid", CustomerID: cust, MinTotalCents: i64(0), MaxTotalCents: i64(10),
				From: tm("2025-12-31T23:00:00Z"), To: tm("2026-02-01T00:00:00Z"), Limit: 100}, nil},
		{"status=PAID", model.SearchQuery{Limit: 20}, []string{"status"}},
		{"limit=101&customer_id=1", model.SearchQuery{Limit: 20}, []string{"customer_id", "limit"}},
		{"min_total_cents=5&max_total_cents=4", model.SearchQuery{MinTotalCents: i64(5), MaxTotalCents: i64(4), Limit: 20}, []string{"max_total_cents"}},
		{"min_total_cents=-1&max_total_cents=1.5", model.SearchQuery{Limit: 20}, []string{"min_total_cents", "max_total_cents"}},
		{"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", model.SearchQuery{From: tm("2026-01-02T00:00:00Z"), To: tm("2026-01-01T00:00:00Z"), Limit: 20}, []string{"to"}},
		{"cursor=abc", model.SearchQuery{Limit: 20}, []string{"cursor"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p := newParams(httptest.NewRequest("GET", "/v1/search/orders?"+tt.query, nil))
			got := parseSearch(p)
			var fields []string
			for _, e := range p.errs {
				fields = append(fields, e.Field)
			}
			if !reflect.DeepEqual(fields, tt.wantFields) {
				t.Fatalf("invalid fields %v, want %v", fields, tt.wantFields)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("query\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParamsWait(t *testing.T) {
	tests := []struct {
		query string
		want  time.Duration
		bad   bool
	}{
		{"", 2 * time.Second, false},
		{"wait=250ms", 250 * time.Millisecond, false},
		{"wait=0s", 0, false},
		{"wait=1h", 10 * time.Second, false}, // capped
		{"wait=5", 2 * time.Second, true},    // a bare number is ambiguous
		{"wait=-1s", 2 * time.Second, true},
	}
	for _, tt := range tests {
		p := newParams(httptest.NewRequest("GET", "/?"+tt.query, nil))
		if got := p.wait(2*time.Second, 10*time.Second); got != tt.want || (len(p.errs) > 0) != tt.bad {
			t.Errorf("%q: wait %s errors %v, want %s bad=%v", tt.query, got, p.errs, tt.want, tt.bad)
		}
	}
}

func TestETagMatches(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{`"3"`, true}, {`W/"3"`, true}, {`"1", "3"`, true}, {`*`, true}, {`"4"`, false}, {``, false}, {`3`, false},
	}
	for _, tt := range tests {
		if got := etagMatches(tt.header, `"3"`); got != tt.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestAsOfMissing(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		m     readMode
		state int64
		want  string
	}{
		{"exists at instant", readMode{at: &at}, 2, ""},
		{"exists at version", readMode{version: 2}, 2, ""},
		{"before creation", readMode{at: &at}, 0, "order o did not exist at 2026-01-02T03:04:05Z: no event of it was recorded at or before that instant"},
		{"never existed", readMode{version: 1}, 0, "no such order"},
		{"version ahead", readMode{version: 5}, 3, "order o has no version 5: its latest version is 3"},
		{"version ahead of instant", readMode{version: 5, at: &at}, 3, "order o was at version 3 at 2026-01-02T03:04:05Z, short of version 5"},
	}
	for _, tt := range tests {
		if got := asOfMissing("order", "o", tt.m, tt.state); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
