package ordersmodel_test

import (
	"strings"
	"testing"

	"github.com/escqrs/platform/services/projector-orders/internal/ordersmodel"
)

func TestRowsDiff(t *testing.T) {
	base := ordersmodel.Rows{
		Orders:   []ordersmodel.OrderRow{{Status: "placed", Version: 1}},
		Activity: []ordersmodel.ActivityRow{{Version: 1}, {Version: 2}},
	}
	changed := ordersmodel.Rows{Orders: base.Orders, Activity: []ordersmodel.ActivityRow{{Version: 1}, {Version: 3}}}
	tests := []struct {
		name string
		got  ordersmodel.Rows
		want []string // substrings, one per reported difference
	}{
		{"equal", base, nil},
		{"one row differs", changed, []string{"account_activity row 1:"}},
		{"counts differ", ordersmodel.Rows{Orders: base.Orders}, []string{"row counts: got orders=1 accounts=0 activity=0, want 1/0/2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff := tt.got.Diff(base)
			if len(diff) != len(tt.want) {
				t.Fatalf("diff = %q, want %d entries", diff, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(diff[i], w) {
					t.Errorf("diff[%d] = %q, want it to contain %q", i, diff[i], w)
				}
			}
		})
	}
}
