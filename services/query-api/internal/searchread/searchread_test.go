package searchread

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/escqrs/platform/services/query-api/internal/model"
)

func TestQuery(t *testing.T) {
	lo, hi := int64(100), int64(900)
	from := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("", 3600))
	to := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    model.SearchQuery
		want string
	}{
		{"match all", model.SearchQuery{}, `{"bool":{}}`},
		{"everything", model.SearchQuery{Text: "desk lamp", Status: "paid", CustomerID: "c1", MinTotalCents: &lo, MaxTotalCents: &hi, From: &from, To: &to},
			`{"bool":{"filter":[{"term":{"status":"paid"}},{"term":{"customer_id":"c1"}},` +
				`{"range":{"total_cents":{"from":100,"include_lower":true,"include_upper":true,"to":900}}},` +
				`{"range":{"placed_at":{"format":"strict_date_optional_time","from":"2026-01-02T02:04:05.678Z","include_lower":true,"include_upper":true,"to":"2026-02-01T00:00:00.000Z"}}}],` +
				`"must":{"multi_match":{"fields":["item_names","items.name","skus.text","items.sku.text"],"operator":"and","query":"desk lamp","type":"cross_fields"}}}}`},
		{"open-ended ranges", model.SearchQuery{MinTotalCents: &lo, To: &to},
			`{"bool":{"filter":[{"range":{"total_cents":{"from":100,"include_lower":true,"include_upper":true,"to":null}}},` +
				`{"range":{"placed_at":{"format":"strict_date_optional_time","from":null,"include_lower":true,"include_upper":true,"to":"2026-02-01T00:00:00.000Z"}}}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := Query(tt.q).Source()
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(src)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("query\n got %s\nwant %s", b, tt.want)
			}
		})
	}
}
