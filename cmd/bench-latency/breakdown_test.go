package main

import (
	"math"
	"testing"
)

func TestQuantileCountsOnlyTheRun(t *testing.T) {
	inf := math.Inf(1)
	// Before the run: 100 events, all under 10ms. The run adds 100 more:
	// 50 under 10ms, 45 in (10ms, 50ms], 4 in (50ms, 100ms], 1 above.
	before := buckets{0.01: 100, 0.05: 100, 0.1: 100, inf: 100}
	after := buckets{0.01: 150, 0.05: 195, 0.1: 199, inf: 200}
	tests := []struct {
		q    float64
		want float64
	}{
		{0.50, 0.01},
		{0.51, 0.05},
		{0.95, 0.05},
		{0.99, 0.1},
		{0.999, inf},
	}
	for _, tt := range tests {
		got, n := quantile(before, after, tt.q)
		if got != tt.want || n != 100 {
			t.Errorf("quantile(%v) = %v over %d events, want %v over 100", tt.q, got, n, tt.want)
		}
	}
	if got, n := quantile(after, after, 0.5); got != 0 || n != 0 {
		t.Errorf("no events in the run: got %v over %d, want 0 over 0", got, n)
	}
}
