package rebuilder_test

import (
	"strings"
	"testing"

	"github.com/escqrs/platform/services/search-indexer/internal/rebuilder"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    rebuilder.Command
		wantErr string
	}{
		{args: nil, want: rebuilder.Command{Name: "serve"}},
		{args: []string{"serve"}, want: rebuilder.Command{Name: "serve"}},
		{args: []string{"rebuild"}, want: rebuilder.Command{Name: "rebuild"}},
		{args: []string{"replay", "--from-position", "42"}, want: rebuilder.Command{Name: "replay", FromPosition: 42}},
		{args: []string{"replay", "-from-position=0"}, want: rebuilder.Command{Name: "replay", FromPosition: 0}},
		{args: []string{"replay"}, wantErr: "--from-position P (P ≥ 0) is required"},
		{args: []string{"replay", "--from-position", "-3"}, wantErr: "--from-position P (P ≥ 0) is required"},
		{args: []string{"replay", "--from-position", "x"}, wantErr: "invalid value"},
		{args: []string{"rebuild", "--from-position", "3"}, wantErr: "--from-position is a replay flag"},
		{args: []string{"serve", "--from-position", "3"}, wantErr: "serve: unexpected arguments"},
		{args: []string{"rebuild", "--nope"}, wantErr: "flag provided but not defined"},
		{args: []string{"rebuild", "now"}, wantErr: `unexpected arguments ["now"]`},
		{args: []string{"rebuil"}, wantErr: `unknown command "rebuil"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := rebuilder.ParseCommand(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "usage:") {
					t.Errorf("err = %v, want the usage with it", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
