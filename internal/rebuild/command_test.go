package rebuild_test

import (
	"io"
	"strings"
	"testing"

	"github.com/escqrs/platform/internal/rebuild"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	const usage = "usage: prog [serve|rebuild|replay --from-position P]"
	tests := []struct {
		args     []string
		wantName string
		wantFrom int64
		wantErr  string
	}{
		{args: []string{"rebuild"}, wantName: "rebuild", wantFrom: -1},
		{args: []string{"replay", "--from-position", "42"}, wantName: "replay", wantFrom: 42},
		{args: []string{"replay", "-from-position=0"}, wantName: "replay", wantFrom: 0},
		{args: nil, wantErr: usage},
		{args: []string{"serve"}, wantErr: `unknown command "serve"`},
		{args: []string{"rebuil"}, wantErr: `unknown command "rebuil"`},
		{args: []string{"replay"}, wantErr: "replay: --from-position P (P ≥ 0) is required"},
		{args: []string{"replay", "--from-position", "-3"}, wantErr: "is required"},
		{args: []string{"replay", "--from-position", "x"}, wantErr: "invalid value"},
		{args: []string{"rebuild", "--from-position", "3"}, wantErr: "is a replay flag"},
		{args: []string{"rebuild", "now"}, wantErr: `rebuild: unexpected arguments ["now"]`},
		{args: []string{"rebuild", "--nope"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			name, from, err := rebuild.ParseCommand("prog", usage, tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), usage) {
					t.Fatalf("err = %v, want one containing %q and the usage", err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.wantName || from != tt.wantFrom {
				t.Fatalf("got %q, %d, %v; want %q, %d", name, from, err, tt.wantName, tt.wantFrom)
			}
		})
	}
}

func TestSubcommandOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{{nil, "serve"}, {[]string{"serve"}, "serve"}, {[]string{"rebuild", "-x"}, "rebuild"}, {[]string{"replay"}, "replay"}} {
		if got, err := rebuild.SubcommandOf(tt.args, "usage"); err != nil || got != tt.want {
			t.Errorf("SubcommandOf(%q) = %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
	if _, err := rebuild.SubcommandOf([]string{"rebiuld"}, "the usage"); err == nil || !strings.Contains(err.Error(), "the usage") {
		t.Errorf("SubcommandOf(rebiuld) = %v, want an error with the usage", err)
	}
}
